"""SparseConv2d / SparseConv1d: exact channel degrees, zeros stay zero through training, the closed form
the device regenerates, seeded reproducibility, and equality with torch's conv on the scattered weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mcuflow.nn import SparseConv1d, SparseConv2d
from mcuflow.nn.conv import kernel_taps
from mcuflow.sparsity.patterns import structured_columns, structured_params


@pytest.mark.parametrize("pattern", ["structured", "random"])
def test_exact_channel_degrees(pattern):
    conv = SparseConv2d(8, 32, 5, out_degree=8, seed=1, pattern=pattern)
    mask = conv.channel_mask()
    assert conv.in_degree == 2 and conv.weight.shape == (32, 2, 5, 5)
    assert (mask.sum(1) == 2).all() and (mask.sum(0) == 8).all()
    assert sum(p.numel() for p in conv.parameters()) == 32 * 2 * 25 + 32


def test_structured_channels_are_the_closed_form_the_device_regenerates():
    conv = SparseConv2d(6, 16, 3, out_degree=8, seed=4)
    expected = structured_columns(structured_params(6, 16, 8, 4))
    assert np.array_equal(conv.channels.numpy(), expected)


def test_seeded_reproducibility():
    a, b = SparseConv2d(8, 16, 3, 4, seed=7, pattern="random"), SparseConv2d(8, 16, 3, 4, seed=7, pattern="random")
    c = SparseConv2d(8, 16, 3, 4, seed=8, pattern="random")
    assert torch.equal(a.channels, b.channels) and not torch.equal(a.channels, c.channels)


@pytest.mark.parametrize("taps", [(0, 0), (4, 5)])
def test_equals_torch_conv_with_the_scattered_weight(taps):
    torch.manual_seed(0)
    conv = SparseConv2d(8, 16, 3, 4, stride=2, padding=1, seed=2, tap_period=taps[0], tap_keep=taps[1])
    x = torch.randn(3, 8, 11, 11)
    dense = conv.dense_weight()
    assert torch.allclose(conv(x), F.conv2d(x, dense, conv.bias, 2, 1), atol=1e-5)
    # off the channel pattern every kernel is zero
    assert (dense.abs().sum((2, 3))[~conv.channel_mask()] == 0).all()
    conv1 = SparseConv1d(8, 16, 5, 4, padding=2, seed=3)
    x1 = torch.randn(2, 8, 20)
    assert torch.allclose(conv1(x1), F.conv1d(x1, conv1.dense_weight(), conv1.bias, 1, 2), atol=1e-5)


def test_tap_mask_is_the_periodic_pattern():
    taps = kernel_taps(4, 3, 3, 4)
    assert taps.shape == (4, 3, 3) and taps[3].all()  # the last residue is dense
    assert all(taps[j].sum() == 4 and taps[j, 1, 1] for j in range(3))  # 4 of 9, the centre always kept
    assert len({taps[j].tobytes() for j in range(3)}) == 3
    conv = SparseConv2d(8, 16, 3, 4, seed=0, tap_period=4, tap_keep=4)
    which = (np.arange(16)[:, None] + conv.channels.numpy() + 1) % 4
    assert np.array_equal(conv.tap_mask.numpy().astype(bool), taps[which])
    assert conv.nnz == int(taps[which].sum()) < 16 * 4 * 9
    with pytest.raises(ValueError, match="keeps 1..8"):
        kernel_taps(4, 3, 3, 9)


def test_zeros_stay_zero_after_training_steps():
    torch.manual_seed(0)
    conv = SparseConv2d(8, 16, 3, 4, seed=1, pattern="random", tap_period=4, tap_keep=3)
    off = conv.dense_weight().detach() == 0
    opt = torch.optim.Adam(conv.parameters(), lr=0.05)
    x, target = torch.randn(8, 8, 9, 9), torch.randn(8, 16, 7, 7)
    before = conv.dense_weight().detach().clone()
    for _ in range(3):
        loss = ((conv(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    dense = conv.dense_weight().detach()
    assert not torch.equal(dense, before)
    assert (dense[off] == 0).all()
    assert (conv.weight.detach()[conv.tap_mask == 0] == 0).all()  # masked compact weights stay 0 too


def test_bad_degrees_are_refused_with_a_fix():
    with pytest.raises(ValueError, match="valid out-degrees for 6->16"):
        SparseConv2d(6, 16, 5, out_degree=4)
