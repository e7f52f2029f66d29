"""A user's own SplitNet: every supported layer saved, loaded, exported and run as C bit for bit against the
reference (tier 2); what the compiler cannot lower refused at export by name, and a lowering that does not
compute what torch does caught by the export's check against the model (tier 1)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mcuflow
from mcuflow import reference
from mcuflow.errors import ConfigError
from mcuflow.export import export
from mcuflow.frontend import torch_frontend
from mcuflow.frontend.torch_check import LoweringMismatchError
from mcuflow.manifest import load_model
from mcuflow.nn import Pad, SparseLinear, SplitNet

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import assert_parity, build_harness, run_harness  # noqa: E402


def _bn(n: int, seed: int) -> nn.BatchNorm1d:
    """A BatchNorm with statistics far from the identity, so a fold that is off shows."""
    bn = nn.BatchNorm1d(n)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5, generator=g)
        bn.running_var.uniform_(0.3, 3.0, generator=g)
        bn.weight.uniform_(0.5, 1.5, generator=g)
        bn.bias.uniform_(-0.3, 0.3, generator=g)
    return bn


def _net(head: list[nn.Module], exit_at: int, exit_branch: nn.Module, tail: list[nn.Module]) -> SplitNet:
    torch.manual_seed(0)
    return SplitNet(nn.Sequential(*head), [(exit_at, exit_branch)], nn.Sequential(*tail)).eval()


def _variants() -> dict[str, SplitNet]:
    """One model per supported layer, the layer in the head (and, where the tail runner has it, the tail)."""
    torch.manual_seed(0)
    return {
        "flatten": _net([nn.Flatten(), Pad(784, 800), SparseLinear(800, 40, 2), nn.ReLU()], 4, nn.Linear(40, 10),
                        [nn.Flatten(), nn.Linear(40, 10)]),
        "identity": _net([Pad(784, 800), SparseLinear(800, 40, 2), nn.Identity(), nn.ReLU(), nn.Identity()], 5,
                         nn.Sequential(nn.Identity(), nn.Linear(40, 10)), [nn.Identity(), nn.Linear(40, 10)]),
        "dropout": _net([Pad(784, 800), SparseLinear(800, 40, 2), nn.ReLU(), nn.Dropout(0.3)], 4,
                        nn.Sequential(nn.Dropout(0.5), nn.Linear(40, 10)), [nn.Linear(40, 20), nn.ReLU(),
                                                                              nn.Dropout(0.2), nn.Linear(20, 10)]),
        "batchnorm": _net([Pad(784, 800), SparseLinear(800, 40, 2), _bn(40, 1), nn.ReLU(), nn.Linear(40, 24),
                           _bn(24, 2), nn.ReLU()], 4,
                          nn.Sequential(nn.Linear(40, 16), _bn(16, 3), nn.ReLU(), nn.Linear(16, 10)),
                          [nn.Linear(24, 24), _bn(24, 4), nn.ReLU(), nn.Linear(24, 10)]),
        "pad": _net([Pad(784, 792), SparseLinear(792, 24, 1, pattern="random", seed=5), nn.ReLU()], 3,
                    nn.Linear(24, 10), [nn.Linear(24, 10)]),
        "no_pad_dense": _net([nn.Linear(784, 32), nn.ReLU()], 2, nn.Linear(32, 10), [nn.Linear(32, 10)]),
    }  # fmt: skip


def _outputs(model: SplitNet, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        exits, final = model(x)
        return [*exits, final, model.head(x)]


@pytest.mark.toolchain
@pytest.mark.parametrize("name", sorted(_variants()))
def test_supported_layer_saves_loads_exports_and_runs_bit_exact(name, tmp_path, mnist_dir):
    from conftest import require_tools

    require_tools("gcc")
    model = _variants()[name]
    loaded = mcuflow.load(mcuflow.save(model, tmp_path / "m.pt"))
    x = torch.rand(64, 784, generator=torch.Generator().manual_seed(1))
    for a, b in zip(_outputs(loaded, x), _outputs(model, x), strict=True):
        assert torch.equal(a, b)
    if name == "flatten":  # images may arrive as (N, 1, 28, 28) as well
        for a, b in zip(_outputs(loaded, x.reshape(64, 1, 28, 28)), _outputs(model, x), strict=True):
            assert torch.equal(a, b)
    res = export(tmp_path / "m.pt", tmp_path / "lib", data_dir=mnist_dir, calibration_samples=200, exit_threshold=0.3)
    q = load_model(res.directory)
    assert [layer.name for layer in q.head] == [f"head.{n}" for n, m in model.head.named_children() if _is_linear(m)]
    inputs = np.random.default_rng(0).integers(-128, 128, (300, 784)).astype(np.int8)
    exe = build_harness(res.directory, tmp_path / "harness")
    out = run_harness(exe, inputs, len(q.exits), q.num_classes, q.intermediate_len, tmp_path)
    assert_parity(out, reference.run(q, inputs))
    assert (res.directory / "tail.npz").exists()


def _is_linear(module: nn.Module) -> bool:
    return type(module) in (nn.Linear, SparseLinear)


def test_batchnorm_is_folded_into_the_linear_layer_before_it(tmp_path, mnist_dir):
    """The folded graph (float64) and torch (float32) agree far below the export check's tolerance."""
    from mcuflow.frontend import lower_model

    model = _variants()["batchnorm"]
    lowered = lower_model(model, "0" * 64)
    assert [n.kind for n in lowered.graph.head] == ["pad", "linear", "relu", "linear", "relu"]
    assert [n.kind for n in lowered.tail.nodes] == ["linear", "relu", "linear"]
    x = np.random.default_rng(2).uniform(0, 1, (100, 784))
    _, head_out, _ = lowered.graph.forward(x)
    with torch.no_grad():
        expected = model.head(torch.from_numpy(x).float()).double().numpy()
    assert np.abs(head_out - expected).max() <= 1e-5 * np.abs(expected).max()


def _save(model: SplitNet, tmp_path: Path) -> Path:
    return mcuflow.save(model, tmp_path / "m.pt")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: _net([nn.Linear(784, 40), nn.ReLU(), nn.BatchNorm1d(40)], 3, nn.Linear(40, 10), [nn.Linear(40, 10)]),
         r"head\.2 \(BatchNorm1d\) cannot be folded: it does not follow a linear layer"),
        (lambda: _net([nn.BatchNorm1d(784), nn.Linear(784, 40), nn.ReLU()], 3, nn.Linear(40, 10), [nn.Linear(40, 10)]),
         r"head\.0 \(BatchNorm1d\) cannot be folded: it does not follow a linear layer"),
        (lambda: _net([nn.Linear(784, 40), nn.BatchNorm1d(40, track_running_stats=False), nn.ReLU()], 3,
                      nn.Linear(40, 10), [nn.Linear(40, 10)]),
         r"head\.1 \(BatchNorm1d\) cannot be folded: it keeps no running statistics"),
        (lambda: _net([nn.Linear(784, 40), _bn(40, 0), nn.ReLU()], 1, nn.Linear(40, 10), [nn.Linear(40, 10)]),
         r"exits\.0 reads the output of head\.0 before the BatchNorm"),
        (lambda: _net([nn.Linear(784, 40), nn.ReLU()], 2, nn.Sequential(nn.ReLU(), nn.BatchNorm1d(40), nn.Linear(40, 10)),
                      [nn.Linear(40, 10)]),
         r"exits\.0\.1 \(BatchNorm1d\) cannot be folded"),
        (lambda: _net([nn.Flatten(1, 1), nn.Linear(784, 40)], 2, nn.Linear(40, 10), [nn.Linear(40, 10)]),
         r"head\.0 \(Flatten\) flattens dimensions 1\.\.1"),
        (lambda: _net([nn.Linear(784, 40), nn.ReLU()], 2, nn.Linear(40, 10), [nn.Linear(40, 10), Pad(10, 12)]),
         r"tail\.1 \(Pad\) cannot run in the host tail"),
        (lambda: _net([nn.Linear(784, 40), nn.ReLU()], 2, nn.Linear(40, 10), [nn.ReLU(), nn.Linear(40, 10)]),
         r"tail\.0 \(ReLU\) does not follow a linear layer"),
        (lambda: _net([nn.Linear(784, 40), nn.ReLU()], 2, nn.Linear(40, 10),
                      [nn.Linear(40, 20), nn.ReLU(), _bn(20, 0), nn.Linear(20, 10)]),
         r"tail\.2 \(BatchNorm1d\) cannot be folded"),
        (lambda: _net([nn.Linear(784, 40), nn.ReLU()], 2, nn.Linear(40, 10), [nn.Linear(40, 12)]),
         "the tail gives 12 logits, expected 10 classes"),
    ],
    ids=["bn_after_relu", "bn_first", "bn_no_running_stats", "exit_inside_fold", "bn_in_exit", "flatten_1_1",
         "pad_in_tail", "relu_first_in_tail", "bn_after_relu_in_tail", "tail_classes"],
)  # fmt: skip
def test_what_the_compiler_cannot_lower_is_refused_at_export_by_name(make, match, tmp_path, mnist_dir):
    ckpt = _save(make(), tmp_path)  # a valid checkpoint: these layers are stored, only not compiled
    with pytest.raises(ConfigError, match=match):
        export(ckpt, tmp_path / "lib", data_dir=mnist_dir, calibration_samples=20)
    assert not (tmp_path / "lib").exists()


def test_a_model_that_fails_on_its_own_inputs_is_refused_at_save_by_name(tmp_path):
    model = _net([nn.Flatten(0), nn.Linear(784, 40)], 2, nn.Linear(40, 10), [nn.Linear(40, 10)])
    with pytest.raises(ConfigError, match=r"head\.1 \(Linear\) fails on inputs of shape \(50176,\)"):
        mcuflow.save(model, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def _skip_batchnorm(bn, path, nodes, ends, width):
    """A wrong lowering: the BatchNorm is dropped instead of folded."""


def _wrong_sign_bias(real):
    def linear(module, path, width):
        node = real(module, path, width)
        if not path.startswith("head"):
            node.bias = -node.bias - 1.0
        return node

    return linear


@pytest.mark.parametrize(
    "name,wrap,match",
    [
        ("_fold_batchnorm", lambda real: _skip_batchnorm, r"at head\.2 \(BatchNorm1d\)"),
        ("_linear", _wrong_sign_bias, r"at exits\.0\.1 \(BatchNorm1d\)"),  # its linear layer is seen after the fold
    ],
    ids=["batchnorm_dropped", "exit_bias"],
)
def test_the_export_check_catches_a_lowering_that_differs_from_the_model(name, wrap, match, tmp_path, mnist_dir,
                                                                          monkeypatch):  # fmt: skip
    ckpt = _save(_variants()["batchnorm"], tmp_path)
    monkeypatch.setattr(torch_frontend, name, wrap(getattr(torch_frontend, name)))
    with pytest.raises(LoweringMismatchError, match=match + r": max \|difference\|"):
        export(ckpt, tmp_path / "lib", data_dir=mnist_dir, calibration_samples=50)
    assert not (tmp_path / "lib").exists()


def test_the_export_check_names_a_wrong_tail(tmp_path, mnist_dir, monkeypatch):
    ckpt = _save(_variants()["dropout"], tmp_path)
    real = torch_frontend.lower_tail

    def scaled_tail(tail, width):
        chain = real(tail, width)
        chain.nodes[-1].weight = chain.nodes[-1].weight / 0.8  # as if dropout's training-time scaling stayed
        return chain

    monkeypatch.setattr(torch_frontend, "lower_tail", scaled_tail)
    with pytest.raises(LoweringMismatchError, match=r"at tail\.3 \(Linear\)"):
        export(ckpt, tmp_path / "lib", data_dir=mnist_dir, calibration_samples=50)
