"""Convolutional models in checkpoints: every conv layer kind is captured, rebuilt and checked on probe
inputs; edited patterns are refused; the head's Unflatten records the input shape."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mcuflow
from mcuflow.errors import CheckpointError, ConfigError
from mcuflow.nn import SparseConv1d, SparseConv2d, SplitNet
from mcuflow.nn.structure import CONV_KINDS, capture, input_features


def _perturbed(model: SplitNet) -> SplitNet:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return model.eval()


def conv2d_model() -> SplitNet:
    torch.manual_seed(0)
    head = nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 8, 5, padding=2),
        nn.BatchNorm2d(8),
        nn.ReLU6(),
        nn.MaxPool2d(2),  # 14x14x8
        SparseConv2d(8, 16, 3, out_degree=4, seed=1, tap_period=4, tap_keep=5),
        nn.ReLU(),
        nn.AvgPool2d(2),  # 6x6x16
        nn.Conv2d(16, 16, 3, groups=16, bias=False),  # depthwise, 4x4x16
        nn.ReLU(),
    )
    exits = [
        (5, nn.Sequential(nn.MaxPool2d(7), nn.Flatten(), nn.Linear(8 * 2 * 2, 10))),
        (10, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))),
    ]
    tail = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    return _perturbed(SplitNet(head, exits, tail))


def conv1d_model() -> SplitNet:
    torch.manual_seed(0)
    head = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 4, 5),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.MaxPool1d(2),
        SparseConv1d(4, 8, 3, out_degree=4, seed=2),
        nn.ReLU(),
        nn.AvgPool1d(2),
    )
    tail = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8, 10))
    exits = [
        (5, nn.Sequential(nn.Flatten(), nn.Linear(4 * 18, 10))),
        (8, nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 10))),
    ]
    return _perturbed(SplitNet(head, exits, tail))


@pytest.mark.parametrize("build,width", [(conv2d_model, 784), (conv1d_model, 40)])
def test_conv_models_round_trip(tmp_path, build, width):
    model = build()
    path = mcuflow.save(model, tmp_path / "m.pt")
    loaded = mcuflow.load(path)
    assert capture(loaded) == capture(model)
    assert input_features(capture(model)) == width
    x = torch.rand(16, width)
    with torch.no_grad():
        (ea, fa), (eb, fb) = model(x), loaded(x)
    assert torch.equal(fa, fb) and all(torch.equal(a, b) for a, b in zip(ea, eb, strict=True))
    assert mcuflow.model_hash(loaded) == mcuflow.model_hash(model)


def test_every_conv_kind_is_covered():
    kinds = {s.type for m in (conv2d_model(), conv1d_model()) for _, s in capture(m).entries()}
    assert set(CONV_KINDS) <= kinds


def test_an_edited_channel_pattern_is_refused(tmp_path):
    model = conv2d_model()
    with torch.no_grad():
        model.head[5].channels.copy_(model.head[5].channels.flip(0))
    with pytest.raises(ConfigError, match=r"head\.5 \(SparseConv2d\) has channels that are not"):
        mcuflow.save(model, tmp_path / "m.pt")


def test_a_tampered_stored_pattern_is_refused(tmp_path):
    path = mcuflow.save(conv2d_model(), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head.5.tap_mask"] = torch.ones_like(payload["state_dict"]["head.5.tap_mask"])
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"head\.5\.tap_mask differs"):
        mcuflow.load(tmp_path / "bad.pt")


def test_an_unsupported_layer_is_named(tmp_path):
    model = conv2d_model()
    model.head[6] = nn.GELU()
    with pytest.raises(ConfigError, match=r"head\.6 \(GELU\) is not a layer type"):
        mcuflow.save(model, tmp_path / "m.pt")
