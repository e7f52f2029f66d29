"""Tier 1: checkpoints hold the modules that were trained (format version 2), refuse what they cannot hold
by name, and still read version 1 exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mcuflow
from mcuflow.checkpoint import VERSION, read_payload
from mcuflow.errors import CheckpointError, ConfigError
from mcuflow.nn import Pad, SparseLinear, SplitNet, build_model, paper_config
from mcuflow.nn.foldnorm import FoldableNorms
from mcuflow.nn.structure import CONV_KINDS, KINDS, ModelStructure, capture, rebuild

ROOT = Path(__file__).resolve().parents[1]

# The model hashes of the shipped version-1 checkpoints: HELLO, export.json and the docs carry them.
SHIPPED_HASHES = {
    "examples/paper_sparse.pt": "0e782e6347f59af17f3f24dae51003882711adc6c3eb7db5517c763ffa18ee20",
    "docs/results-model/paper_sparse_95.pt": "7b984fc1fdfa510c972335547374e1a9e17da17134e04e1e169d1cf69da4e89d",
    "docs/results-link/paper_sparse_ft_2b.pt": "ca506e7d05428fa0e6b7c2253f3facf227752eaa2a3ae6d7706927d7819ce4a7",
    "docs/results-link/paper_sparse_ft_dense_tail_k12_2b5.pt": (
        "7e0636a2e5e106645ef2eab735b89cfae98fdef747b6948b37305ef27ec06145"
    ),
    "docs/results-link/paper_sparse_ft_dense_tail_k16_2b5.pt": (
        "8d72cb39b3f3565258dbd9636f0197cc3eb7810b5f664eaa79fe4d0ace7e15be"
    ),
    "docs/results-link/paper_sparse_ft_t16b3.pt": "0d6eb8e713a264aaedd2ff0ec671ea0c508e788dc8ea7e7b1fef2d2911221a3e",
}


def _perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return model.eval()


def every_kind_model() -> SplitNet:
    """A model holding every layer type a checkpoint stores, nested Sequentials and an exit without one."""
    head = nn.Sequential(
        nn.Flatten(),
        Pad(784, 800),
        SparseLinear(800, 40, 2, seed=3),
        nn.BatchNorm1d(40),
        nn.ReLU(),
        nn.Sequential(nn.Dropout(0.25), nn.Identity()),
        nn.Linear(40, 20, bias=False),
        nn.ReLU(inplace=True),
    )
    exits = [(5, nn.Sequential(nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 10))), (8, nn.Linear(20, 10))]
    tail = nn.Sequential(nn.Linear(20, 20), nn.BatchNorm1d(20, eps=1e-3, momentum=None), nn.ReLU(), nn.Linear(20, 10))
    torch.manual_seed(0)
    return _perturbed(SplitNet(head, exits, tail))


def _outputs(model: SplitNet, x: torch.Tensor):
    with torch.no_grad():
        exits, final = model(x)
        return [e.clone() for e in exits], final.clone(), model.head(x).clone()


def _same(a, b) -> bool:
    (ea, fa, ha), (eb, fb, hb) = a, b
    return torch.equal(fa, fb) and torch.equal(ha, hb) and all(torch.equal(x, y) for x, y in zip(ea, eb, strict=True))


def test_every_layer_type_round_trips(tmp_path):
    model = every_kind_model()
    path = mcuflow.save(model, tmp_path / "m.pt", meta={"note": "mine"})
    payload = read_payload(path)
    assert payload["version"] == VERSION == 2 and json.loads(payload["config"]) is None
    loaded = mcuflow.load(path)
    assert not hasattr(loaded, "config") and loaded.meta == {"note": "mine"}
    assert capture(loaded) == capture(model)
    # the convolutional kinds round-trip in tests/test_conv_checkpoint.py
    assert {s.type for _, s in capture(model).entries()} == {*KINDS, "Sequential"} - set(CONV_KINDS)
    x = torch.rand(32, 784)
    assert _same(_outputs(loaded, x), _outputs(model, x))
    # the head flattens images: (N, 1, 28, 28) and (N, 784) give the same answers
    assert _same(_outputs(loaded, x.reshape(32, 1, 28, 28)), _outputs(model, x))
    assert mcuflow.model_hash(loaded) == mcuflow.model_hash(model)


def test_layer_list_json_round_trip_and_its_errors():
    structure = capture(every_kind_model())
    assert ModelStructure.from_json(json.loads(json.dumps(structure.to_json()))) == structure
    good = structure.to_json()
    bad_cases = [
        ({**good, "head": [{"type": "Sigmoid", "params": {}}]}, r"head\.0 has unknown layer type 'Sigmoid'"),
        ({**good, "head": [{"type": "Linear", "params": {"in_features": 3}}]}, r"head\.0 \(Linear\) parameters"),
        ({**good, "tail": [{"type": "Linear", "params": {"in_features": 3, "out_features": True, "bias": True}}]},
         r"tail\.0 \(Linear\) parameter out_features=True"),
        ({**good, "exits": [{"at": "2", "branch": {}}]}, r"exits\.0 must be an object"),
        ({"head": []}, "must be an object with"),
    ]  # fmt: skip
    for data, match in bad_cases:
        with pytest.raises(ConfigError, match=match):
            ModelStructure.from_json(data)


def test_rebuild_names_a_layer_that_cannot_be_built():
    structure = ModelStructure.from_json(
        {"head": [{"type": "SparseLinear", "params": {"in_features": 800, "out_features": 7, "out_degree": 3,
                                                      "seed": 0, "pattern": "structured"}}],
         "exits": [], "tail": []}
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"head\.0 \(SparseLinear\) cannot be built"):
        rebuild(structure)


def _head_then(*layers: nn.Module) -> SplitNet:
    head = nn.Sequential(nn.Linear(784, 40), nn.ReLU(), *layers)
    return SplitNet(head, [(2, nn.Linear(40, 10))], nn.Sequential(nn.Linear(40, 10)))


@pytest.mark.parametrize(
    "model,match",
    [
        (_head_then(nn.Sigmoid()), r"head\.2 \(Sigmoid\) is not a layer type mcuflow supports"),
        (_head_then(nn.Sequential(nn.Identity(), nn.GELU())), r"head\.2\.1 \(GELU\)"),
        (SplitNet(nn.Sequential(nn.Linear(784, 10)), [], nn.Sequential(nn.Tanh())), r"tail\.0 \(Tanh\)"),
        (SplitNet(nn.Sequential(nn.Linear(784, 40)), [(1, nn.Softmax(1))], nn.Sequential()), r"exits\.0 \(Softmax\)"),
    ],
    ids=["sigmoid_in_head", "nested_gelu", "tanh_in_tail", "softmax_exit"],
)
def test_unknown_layers_are_refused_at_save_by_path_and_type(tmp_path, model, match):
    with pytest.raises(ConfigError, match=match):
        mcuflow.save(model, tmp_path / "m.pt", config=paper_config())  # refused before any config is trusted
    assert list(tmp_path.iterdir()) == []


def test_what_a_layer_list_cannot_carry_is_refused_by_name(tmp_path):
    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    subclass = SplitNet(nn.Sequential(Doubled(784, 40)), [(1, nn.Linear(40, 10))], nn.Sequential(nn.Linear(40, 10)))
    with pytest.raises(ConfigError, match=r"head\.0 \(Doubled\)"):
        mcuflow.save(subclass, tmp_path / "m.pt")
    hooked = build_model(paper_config())
    FoldableNorms(hooked)  # BatchNorms on forward hooks, never folded
    with pytest.raises(ConfigError, match=r"head\.1 \(SparseLinear\) has a forward hook.*fold"):
        mcuflow.save(hooked, tmp_path / "m.pt")
    with pytest.raises(ConfigError, match=r"head\.1 \(SparseLinear\) holds float64 weight"):
        mcuflow.save(build_model(paper_config()).double(), tmp_path / "m.pt")
    edited = build_model(paper_config())
    edited.head[1].columns[0, 0] = (edited.head[1].columns[0, 0] + 1) % 800
    with pytest.raises(ConfigError, match=r"head\.1 \(SparseLinear\) has columns that are not the structured pattern"):
        mcuflow.save(edited, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_model_its_checkpoint_would_not_give_back(tmp_path):
    class Scaled(SplitNet):
        def forward(self, x):
            exits, final = super().forward(x)
            return exits, 3 * final

    model = Scaled(nn.Sequential(nn.Linear(784, 40)), [(1, nn.Linear(40, 10))], nn.Sequential(nn.Linear(40, 10)))
    with pytest.raises(CheckpointError, match="differs from this one at the forward of Scaled"):
        mcuflow.save(model, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_config_that_does_not_describe_the_modules_is_refused(tmp_path):
    model = build_model(paper_config())
    model.head.insert(1, nn.Dropout(0.1))  # the config still says head.1 is the sparse junction
    with pytest.raises(ConfigError, match=r"does not describe the model's modules: head\.1: Dropout"):
        mcuflow.save(model, tmp_path / "m.pt")
    del model.config  # saved as the modules are, without a config
    loaded = mcuflow.load(mcuflow.save(model, tmp_path / "m.pt"))
    assert type(loaded.head[1]) is nn.Dropout and not hasattr(loaded, "config")
    other = paper_config(out_degrees=[4, 9, 10])
    with pytest.raises(ConfigError, match=r"head\.1: SparseLinear\(.*out_degree=2.* vs SparseLinear\(.*out_degree=4"):
        mcuflow.save(build_model(paper_config()), tmp_path / "m.pt", config=other)


def test_config_models_keep_their_config_and_their_version_1_hash(tmp_path):
    model = _perturbed(build_model(paper_config()))
    before = mcuflow.model_hash(model)
    loaded = mcuflow.load(mcuflow.save(model, tmp_path / "m.pt"))
    assert loaded.config == model.config and mcuflow.model_hash(loaded) == before
    # the same model written as version 1 wrote it hashes alike: config JSON, then the tensors
    v1 = {"format": "mcuflow-checkpoint", "version": 1, "config": json.dumps(model.config.to_dict(), sort_keys=True),
          "meta": "{}", "state_dict": model.state_dict()}  # fmt: skip
    torch.save(v1, tmp_path / "v1.pt")
    assert mcuflow.model_hash(mcuflow.load(tmp_path / "v1.pt")) == before


def test_a_hand_built_model_saved_with_its_config_hashes_as_it_loads(tmp_path):
    built = build_model(paper_config())
    hand = SplitNet(built.head, list(zip(built.exit_points, built.exits, strict=True)), built.tail)  # no .config
    mcuflow.save(hand, tmp_path / "m.pt", config=paper_config())
    loaded = mcuflow.load(tmp_path / "m.pt")
    assert hand.config == loaded.config and mcuflow.model_hash(hand) == mcuflow.model_hash(loaded)


def test_hash_tells_apart_models_that_differ_only_in_structure():
    a = SplitNet(
        nn.Sequential(nn.Linear(784, 40), nn.ReLU()), [(2, nn.Linear(40, 10))], nn.Sequential(nn.Linear(40, 10))
    )
    b = SplitNet(
        nn.Sequential(nn.Linear(784, 40), nn.Dropout()), [(2, nn.Linear(40, 10))], nn.Sequential(nn.Linear(40, 10))
    )
    b.load_state_dict(a.state_dict())
    assert mcuflow.model_hash(a) != mcuflow.model_hash(b)


@pytest.mark.parametrize("relpath", sorted(SHIPPED_HASHES))
def test_shipped_version_1_checkpoints_load_with_unchanged_hashes(relpath, tmp_path):
    path = ROOT / relpath
    assert read_payload(path)["version"] == 1
    model = mcuflow.load(path)
    assert mcuflow.model_hash(model) == SHIPPED_HASHES[relpath]
    # written again (version 2) it is the same model: same hash, same outputs
    again = mcuflow.load(mcuflow.save(model, tmp_path / "again.pt", meta=model.meta))
    assert read_payload(tmp_path / "again.pt")["version"] == 2
    assert mcuflow.model_hash(again) == SHIPPED_HASHES[relpath] and again.config == model.config
    x = torch.rand(16, 784, generator=torch.Generator().manual_seed(1))
    assert _same(_outputs(again, x), _outputs(model, x))


def test_save_and_load_leave_the_global_random_stream_alone(tmp_path):
    model, config_model = every_kind_model(), build_model(paper_config())
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mcuflow.load(mcuflow.save(model, tmp_path / "m.pt"))
    mcuflow.save(config_model, tmp_path / "c.pt")  # the config check builds a model too
    assert torch.equal(torch.rand(3), expected)


def _rewrite(path: Path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


def test_unloadable_version_2_files_give_one_line_naming_the_reason(tmp_path):
    path = mcuflow.save(every_kind_model(), tmp_path / "m.pt")
    good = torch.load(path, weights_only=True)
    cases = [
        ({"state_dict": {k: v for k, v in good["state_dict"].items() if k != "head.6.weight"}},
         r"head\.6\.weight of head\.6 \(Linear\) is not in the file"),
        ({"state_dict": {**good["state_dict"], "head.0.weight": torch.zeros(3)}},
         r"the file has head\.0\.weight, which head\.0 \(Flatten\) does not hold"),
        ({"state_dict": {**good["state_dict"], "tail.0.weight": torch.zeros(20, 21)}},
         r"tail\.0\.weight is \(20, 21\) in the file but \(20, 20\) in tail\.0 \(Linear\)"),
        ({"structure": "{broken"}, "corrupt structure"),
        ({"structure": json.dumps({"head": [{"type": "Conv3d", "params": {}}], "exits": [], "tail": []})},
         r"invalid layer list: head\.0 has unknown layer type 'Conv3d'"),
        ({"config": json.dumps(paper_config().to_dict())}, "has a config that does not describe its layers"),
    ]  # fmt: skip
    for changes, match in cases:
        torch.save({**good, **changes}, path)
        with pytest.raises(CheckpointError, match=match) as err:
            mcuflow.load(path)
        assert "\n" not in str(err.value) and "Error(s) in loading" not in str(err.value)


def test_a_version_1_file_whose_config_misses_a_layer_names_the_tensors(tmp_path):
    """What version 1 wrote for a head with a Flatten: its config has none, so the weights sit one position on."""
    model = build_model(paper_config())
    model.head.insert(0, nn.Flatten())
    v1 = {"format": "mcuflow-checkpoint", "version": 1, "config": json.dumps(paper_config().to_dict()),
          "meta": "{}", "state_dict": model.state_dict()}  # fmt: skip
    torch.save(v1, tmp_path / "v1.pt")
    with pytest.raises(CheckpointError, match=r"head\.1\.weight of head\.1 \(SparseLinear\) is not in the file, "
                                              r"which holds head\.2\.weight instead") as err:  # fmt: skip
        mcuflow.load(tmp_path / "v1.pt")
    assert "Error(s)" not in str(err.value)
