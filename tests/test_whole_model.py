"""A split covering every junction: the whole model on the device, its last layer the final exit that always
answers, nothing offloaded. Config (tier 1), C parity (tier 2), a QEMU session (tier 3)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mcuflow
from mcuflow import reference
from mcuflow.export import export
from mcuflow.manifest import ExportManifest, load_model
from mcuflow.nn import ExitConfig, ModelConfig, SparseLinear, SplitNet, build_model

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import assert_parity, build_harness, mnist, run_harness, train_quick  # noqa: E402

WHOLE = ModelConfig(sizes=[800, 40, 10], out_degrees=[2, 10], split=2, exits=[ExitConfig(at=1)], input_size=784)


def test_whole_model_config_builds_an_empty_tail():
    model = build_model(WHOLE)
    assert WHOLE.whole_on_device and len(model.tail) == 0
    assert [type(m).__name__ for m in model.head] == ["Pad", "SparseLinear", "ReLU", "Linear"]  # no ReLU on logits
    x = torch.rand(4, 784)
    with torch.no_grad():
        assert torch.equal(model(x)[1], model.head(x))


@pytest.fixture(scope="module")
def trained_whole(mnist_dir, tmp_path_factory) -> Path:
    train = mnist(mnist_dir, "train")
    torch.manual_seed(0)
    model = train_quick(build_model(WHOLE), train.images[:10000], train.labels[:10000], steps=200)
    return mcuflow.save(model, tmp_path_factory.mktemp("whole") / "whole.pt")


def test_export_adds_a_final_exit_that_always_answers(trained_whole, mnist_dir, tmp_path):
    res = export(trained_whole, tmp_path / "lib", data_dir=mnist_dir, calibration_samples=300, exit_threshold=0.99)
    meta = ExportManifest.read(res.directory)
    assert [(e.name, e.at, len(e.layers)) for e in meta.exits] == [("exits.0", 1, 1), ("final", 2, 0)]
    assert meta.exits[1].threshold_q15 == 0 and meta.exits[0].threshold_q15 > 0
    # the firmware keeps the head output (the logits) as its intermediate; it is never sent
    assert meta.intermediate_len == 10 and meta.tail is None and not (res.directory / "tail.npz").exists()
    assert any("whole model on the device" in n for n in meta.notes)
    test = mnist(mnist_dir, "test").subset(500)
    ref = reference.run(load_model(res.directory), reference.pixels_to_input(test.images))
    assert ref.exited.all()
    final = ref.exit_index == 1
    assert 0 < final.mean() < 1  # the early exit takes the confident ones, the final layer the rest
    model = mcuflow.load(trained_whole)
    with torch.no_grad():
        float_final = model(torch.from_numpy(test.images.reshape(-1, 784) / 255.0).float())[1].argmax(1).numpy()
    assert np.mean(ref.label[final] == float_final[final]) > 0.95  # the int8 final layer answers as torch does


@pytest.mark.toolchain
def test_whole_model_c_matches_the_reference(trained_whole, mnist_dir, tmp_path):
    from conftest import require_tools

    require_tools("gcc")
    res = export(trained_whole, tmp_path / "lib", data_dir=mnist_dir, calibration_samples=300)
    q = load_model(res.directory)
    x = reference.pixels_to_input(mnist(mnist_dir, "test").images[:1000])
    exe = build_harness(res.directory, tmp_path / "harness")
    out = run_harness(exe, x, len(q.exits), q.num_classes, q.intermediate_len, tmp_path)
    ref = reference.run(q, x)
    assert_parity(out, ref)
    assert out["exited"].all()


def test_a_hand_built_model_without_exits_runs_whole_on_the_device(tmp_path, mnist_dir):
    layers = [nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), SparseLinear(32, 10, 5)]
    model = SplitNet.from_layers(layers, split=len(layers)).eval()
    res = export(mcuflow.save(model, tmp_path / "m.pt"), tmp_path / "lib", data_dir=mnist_dir, calibration_samples=50)
    assert [(e.name, e.threshold_q15) for e in res.manifest.exits] == [("final", 0)]
    x = np.random.default_rng(0).integers(-128, 128, (50, 784)).astype(np.int8)
    ref = reference.run(load_model(res.directory), x)
    assert ref.exited.all() and (ref.exit_index == 0).all()


@pytest.mark.firmware
@pytest.mark.slow
def test_hil_answers_every_sample_on_the_device(tmp_path, mnist_dir, monkeypatch):
    """``train --split`` over every junction, then a short QEMU session: 100% answered locally, parity 0."""
    from conftest import require_tools

    from mcuflow.cli import main
    from mcuflow.hil import run_hil

    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    ckpt = tmp_path / "whole.pt"
    args = ["train", "--split", "3", "--epochs", "2", "--limit", "4000", "--test-limit", "500", "--no-progress"]
    assert main([*args, "--data-dir", str(mnist_dir), "--out", str(ckpt)]) in (0, None)
    assert len(mcuflow.load(ckpt).tail) == 0
    monkeypatch.delenv("MCUFLOW_DATA_DIR", raising=False)  # the bundled subset: no dataset needed
    r = run_hil(ckpt, "qemu-mps2-an386", samples=50, calibration_samples=200, show_progress=False,
                log=lambda *a: None, profile=False)  # fmt: skip
    assert (r.samples, r.answered, r.lost, r.errors) == (50, 50, 0, 0)
    assert r.exit_rate == 1.0 and r.parity_mismatches == 0 and r.bytes_per_offload is None
    assert all(row.exit_rate == 1.0 for row in r.tradeoff)  # at any threshold the final exit answers
