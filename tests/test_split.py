"""SplitNet and build_model: split point, exits, parameter counts."""

from __future__ import annotations

import pytest
import torch

from mcuflow.errors import ConfigError
from mcuflow.nn import ExitConfig, ModelConfig, SparseLinear, build_model, main_path_parameters, paper_config


def test_paper_model_shape_and_params():
    model = build_model(paper_config())
    assert main_path_parameters(model) == 2450
    exits, final = model(torch.rand(4, 784))
    assert len(exits) == 1 and exits[0].shape == (4, 10) and final.shape == (4, 10)
    assert model.run_head(torch.rand(2, 784)).shape == (2, 40)
    assert isinstance(model.head[1], SparseLinear) and model.head[1].in_features == 800


def test_forward_equals_head_then_tail():
    torch.manual_seed(0)
    model = build_model(paper_config()).eval()
    x = torch.rand(3, 784)
    _, final = model(x)
    assert torch.allclose(final, model.run_tail(model.run_head(x)))


@pytest.mark.parametrize(
    "family,sizes,params",
    [("deep", [800, 3, 3, 10], 2455), ("shallow", [800, 3, 10], 2443), ("deep", [800, 20, 20, 10], 16650)],
)
def test_dense_families_count_edges_plus_biases(family, sizes, params):
    cfg = ModelConfig(sizes=sizes, family=family, input_size=784)
    assert main_path_parameters(build_model(cfg)) == params


def test_exit_at_inner_head_layer_and_hidden_branch():
    cfg = ModelConfig(
        sizes=[800, 40, 40, 10],
        out_degrees=[2, 9, 10],
        split=2,
        exits=[ExitConfig(1, [16]), ExitConfig(2)],
        input_size=784,
    )
    model = build_model(cfg)
    exits, final = model(torch.rand(2, 784))
    assert [e.shape for e in exits] == [(2, 10), (2, 10)]
    assert sum(p.numel() for p in model.exits[0].parameters()) == 40 * 16 + 16 + 16 * 10 + 10
    assert model.exit_points == [cfg.head_position(1), cfg.head_position(2)]


@pytest.mark.parametrize(
    "bad",
    [
        dict(sizes=[800, 40, 40, 10], out_degrees=[2, 9]),
        dict(sizes=[784, 40, 40, 10], out_degrees=[2, 9, 10]),
        dict(sizes=[800, 40, 10], split=3),
        dict(sizes=[800, 40, 10], split=2, exits=[{"at": 2}]),  # the whole model on the device: it would read logits
        dict(sizes=[800, 40, 10], split=2, tail_hidden=[16]),  # no host tail to replace
        dict(sizes=[800, 40, 10], exits=[{"at": 2}]),
        dict(sizes=[800, 40, 10], family="wide"),
        dict(sizes=[800, 40, 10], pattern="banded"),
        dict(sizes=[800, 40, 10], bogus=1),
        dict(sizes=[800]),
    ],
)
def test_bad_configs_raise_config_error(bad):
    with pytest.raises(ConfigError):
        ModelConfig.from_dict(bad)


def test_junction_seeds_differ():
    model = build_model(paper_config(seed=3))
    assert model.head[1].seed == 3 and model.tail[0].seed == 4


def test_from_layers_cuts_a_plain_list():
    from torch import nn

    from mcuflow.nn import SplitNet

    layers = [nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)]
    net = SplitNet.from_layers(layers, split=2, exits={2: nn.Linear(6, 3), 1: nn.Linear(6, 3)})
    assert len(net.head) == 2 and len(net.tail) == 3
    exits, final = net(torch.rand(5, 8))
    assert [e.shape for e in exits] == [(5, 3), (5, 3)] and final.shape == (5, 3)
    plain = nn.Sequential(*layers)
    x = torch.rand(2, 8)
    assert torch.allclose(net(x)[1], plain(x))
    with pytest.raises(ValueError):
        SplitNet.from_layers(layers, split=6)
    whole = SplitNet.from_layers(layers, split=5)  # the whole model in the head, an empty tail
    assert len(whole.tail) == 0 and torch.allclose(whole(x)[1], plain(x))
    with pytest.raises(ValueError):
        SplitNet.from_layers(layers, split=2, exits={3: nn.Linear(4, 3)})
