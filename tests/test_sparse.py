"""SparseLinear: off-pattern weights stay exactly zero through training; dense equivalence."""

from __future__ import annotations

import pytest
import torch

from mcuflow.nn import Pad, SparseLinear


@pytest.mark.parametrize("pattern", ["structured", "random"])
def test_matches_dense_weight(pattern):
    torch.manual_seed(0)
    layer = SparseLinear(800, 40, 2, seed=1, pattern=pattern)
    x = torch.randn(5, 800)
    dense = x @ layer.dense_weight().T + layer.bias
    assert torch.allclose(layer(x), dense, atol=1e-5)
    assert layer.weight.shape == (40, 40) and layer.columns.shape == (40, 40)
    assert int(layer.mask().sum()) == 1600


def test_degrees_and_parameter_count():
    layer = SparseLinear(40, 40, 9, seed=2)
    assert layer.in_degree == 9
    mask = layer.mask()
    assert (mask.sum(1) == 9).all() and (mask.sum(0) == 9).all()
    assert sum(p.numel() for p in layer.parameters()) == 40 * 9 + 40


def test_zeros_stay_zero_after_training_steps():
    torch.manual_seed(0)
    layer = SparseLinear(64, 16, 3, seed=4, pattern="random")
    off = ~layer.mask()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    x, target = torch.randn(32, 64), torch.randn(32, 16)
    before = layer.dense_weight().detach().clone()
    for _ in range(5):
        loss = ((layer(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    dense = layer.dense_weight().detach()
    assert not torch.equal(dense, before)  # training did change the weights
    assert (dense[off] == 0).all()
    # the gradient with respect to the dense matrix is zero off the pattern: nothing there to update
    w = layer.dense_weight().detach().requires_grad_(True)
    ((x @ w.T + layer.bias - target) ** 2).mean().backward()
    assert w.grad[off].abs().sum() > 0  # a dense layer would have moved these...
    assert all(p.shape != w.shape for p in layer.parameters())  # ...but SparseLinear has no such parameter


def test_non_integral_degree_raises_value_error():
    with pytest.raises(ValueError, match="pad the input to 800"):
        SparseLinear(784, 40, 2)


def test_pad():
    pad = Pad(784, 800)
    y = pad(torch.ones(3, 28, 28))
    assert y.shape == (3, 800)
    assert y[:, :784].eq(1).all() and y[:, 784:].eq(0).all()
    with pytest.raises(ValueError):
        Pad(800, 784)
