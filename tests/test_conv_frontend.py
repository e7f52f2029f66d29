"""Convolutional SplitNets -> float IR: Conv2d/Pool2d nodes in HWC order, BatchNorm folded, ReLU6 as the
clamp, Flatten as permuted linear columns; torch_check runs the graph against torch; refusals by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.frontend.torch_check import LoweringMismatchError, check_lowering
from mcuflow.frontend.torch_frontend import UnsupportedLayerError, lower_model
from mcuflow.ir.graph import Conv2d, Linear, Pool2d, Shape
from mcuflow.nn import SparseConv2d, SplitNet
from mcuflow.nn.arch import PRESETS, Arch, build_arch
from mcuflow.passes.fuse import fuse_relu
from tests.test_conv_checkpoint import conv1d_model, conv2d_model


def _inputs(n: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).random((n, width))


@pytest.mark.parametrize("build,width", [(conv2d_model, 784), (conv1d_model, 40)])
def test_lowered_graph_computes_what_torch_does(build, width):
    model = build()
    lowered = lower_model(model, "h")
    check_lowering(model, lowered, _inputs(12, width))
    g = lowered.graph
    assert g.input_len == width
    assert g.input_shape == (Shape(28, 28, 1) if width == 784 else Shape(1, 40, 1))
    assert any(isinstance(n, Conv2d) for n in g.head) and any(isinstance(n, Pool2d) for n in g.head)
    # and the ReLUs fuse into the convolutions before them
    fused = fuse_relu(g)
    assert all(n.kind != "relu" for n in fused.head)


def test_conv_node_details():
    model = conv2d_model()
    g = lower_model(model, "h").graph
    conv1, pool, sparse, _, pool2, dw, _ = g.head
    assert conv1.relu and conv1.act_max == 6.0 and conv1.padding == (2, 2, 2, 2)  # BN folded, ReLU6 clamp
    assert sparse.pattern == "structured" and sparse.params.n_in == 8 and sparse.taps.shape == (4, 3, 3)
    assert sparse.nnz == model.head[5].nnz
    assert dw.pattern == "depthwise" and dw.channels[:, 0].tolist() == list(range(16))
    assert g.shape_after(len(g.head)) == Shape(4, 4, 16)
    exit_pool = g.exits[0].nodes[0]
    assert isinstance(exit_pool, Pool2d) and exit_pool.out_shape == Shape(2, 2, 8)


def test_flatten_permutes_the_next_linear_to_hwc():
    torch.manual_seed(0)
    head = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 3, 3), nn.ReLU())
    tail = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 10))
    model = SplitNet(head, [(3, nn.Sequential(nn.Flatten(), nn.Linear(108, 10)))], tail).eval()
    lowered = lower_model(model, "h")
    check_lowering(model, lowered, _inputs(5, 64))
    exit_linear = lowered.graph.exits[0].nodes[0]
    assert isinstance(exit_linear, Linear) and exit_linear.pattern == "dense"
    assert not np.array_equal(exit_linear.weight, model.exits[0][1].weight.detach().double().numpy())
    # the host tail reads the device's HWC vector as it comes
    tail_linear = lowered.tail.nodes[0]
    x = _inputs(4, 64)
    _, head_out, _ = lowered.graph.forward(x)
    want = model(torch.from_numpy(x).float())[1].detach().double().numpy()
    assert np.allclose(tail_linear.forward(head_out), want, atol=1e-4)


def test_presets_lower_and_check():
    for spec in PRESETS.values():
        torch.manual_seed(0)
        model = build_arch(Arch(spec)).eval()
        lowered = lower_model(model, "h")
        check_lowering(model, lowered, _inputs(6, 784))
        assert lowered.graph.input_shape == Shape(28, 28, 1)
        assert lowered.graph.intermediate_len == 4 * 4 * 32


def test_a_wrong_lowering_is_caught():
    model = conv2d_model()
    lowered = lower_model(model, "h")
    lowered.graph.head[2].weight[:] = 0.0  # the sparse conv
    with pytest.raises(LoweringMismatchError, match=r"head\.5 \(SparseConv2d\)"):
        check_lowering(model, lowered, _inputs(4, 784))


@pytest.mark.parametrize(
    "layer,match",
    [
        (nn.Conv2d(8, 8, 3, padding=1, dilation=2), r"head\.3 \(Conv2d\) has dilation"),
        (nn.MaxPool2d(2, ceil_mode=True), r"head\.3 \(MaxPool2d\) has padding"),
        (nn.AdaptiveAvgPool2d(2), r"head\.3 \(AdaptiveAvgPool2d\) pools to 2"),
        (nn.Sigmoid(), r"head\.3 \(Sigmoid\) has no device kernel"),
        (nn.Conv2d(8, 8, 3, padding="same"), r"head\.3 \(Conv2d\) has padding='same'"),
        (nn.ReLU6(), r"head\.3 \(ReLU6\) does not follow a convolution"),
        (nn.Linear(8, 8), r"head\.3 \(Linear\) reads a vector"),
    ],
)
def test_unsupported_layers_are_refused_by_name(layer, match):
    head = nn.Sequential(nn.Unflatten(1, (1, 12, 12)), nn.Conv2d(1, 8, 3), nn.ReLU(), layer)
    model = SplitNet(head, [], nn.Sequential())
    with pytest.raises(ConfigError, match=match):
        lower_model(model, "h")


def test_multichannel_inputs_and_early_exit_before_a_fold_are_refused():
    model = SplitNet(nn.Sequential(nn.Unflatten(1, (3, 8, 8)), nn.Conv2d(3, 4, 3)), [], nn.Sequential())
    with pytest.raises(UnsupportedLayerError, match=r"head\.0 \(Unflatten\) shapes a 3-channel input"):
        lower_model(model, "h")
    head = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), SparseConv2d(1, 4, 3, 4), nn.BatchNorm2d(4), nn.ReLU())
    exit_ = nn.Sequential(nn.Flatten(), nn.Linear(144, 10))
    model = SplitNet(head, [(2, exit_)], nn.Sequential(nn.Flatten(), nn.Linear(144, 10))).eval()
    with pytest.raises(UnsupportedLayerError, match=r"exits\.0 reads the output of head\.1 before the BatchNorm"):
        lower_model(model, "h")
