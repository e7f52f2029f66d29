"""``mcuflow train --preset / --arch``: declared convolutional split models, trained for a step on a few
hundred images, saved, and lowered; bad architectures are one line before any data is read."""

from __future__ import annotations

import json

import pytest
import torch

import mcuflow
from mcuflow.cli import main
from mcuflow.errors import ConfigError
from mcuflow.frontend.torch_check import check_lowering
from mcuflow.frontend.torch_frontend import lower_model
from mcuflow.ir.graph import Shape
from mcuflow.nn.arch import PRESETS, Arch, build_arch, load_arch
from mcuflow.nn.layer_report import layer_report

QUICK = ["--epochs", "1", "--limit", "300", "--test-limit", "100", "--batch-size", "100", "--no-progress"]


def test_preset_trains_saves_and_lowers(tmp_path, mnist_dir, capsys):
    ckpt, metrics = tmp_path / "m.pt", tmp_path / "m.json"
    argv = ["train", "--preset", "b-lenet-sparse", "--data-dir", str(mnist_dir), *QUICK]
    rc = main([*argv, "--out", str(ckpt), "--metrics-json", str(metrics)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "b-lenet-sparse: 4272 weights on the device" in out
    data = json.loads(metrics.read_text())
    assert data["layers"]["device"]["weights"] == 4272 and data["layers"]["offload"] == [32, 4, 4]
    model = mcuflow.load(ckpt)
    assert model.meta["arch"]["name"] == "b-lenet-sparse"
    lowered = lower_model(model, mcuflow.model_hash(model))
    assert lowered.graph.input_shape == Shape(28, 28, 1)
    check_lowering(model, lowered, torch.rand(8, 784).double().numpy())


def test_weight_counts_of_the_presets():
    torch.manual_seed(0)
    dense = layer_report(build_arch(Arch(PRESETS["b-lenet"])), 784)["device"]
    sparse = layer_report(build_arch(Arch(PRESETS["b-lenet-sparse"])), 784)["device"]
    assert dense["weights"] == 400 + 12800 + 672 and sparse["weights"] == 400 + 3200 + 672
    assert dense["weights"] / sparse["weights"] >= 3.0


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_arch_file(tmp_path, mnist_dir, capsys, suffix):
    path = tmp_path / f"a{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"name": "tiny", "input": [1, 28, 28], "classes": 10,
                                    "head": [{"type": "conv", "out": 4, "kernel": 3, "stride": 2}, "relu"],
                                    "exits": [{"at": 3, "layers": ["gap", "flatten", {"type": "linear", "out": 10}]}],
                                    "tail": ["flatten", {"type": "linear", "out": 10}]}))  # fmt: skip
    else:
        path.write_text(
            'name = "tiny"\ninput = [1, 28, 28]\nclasses = 10\n'
            'head = [{type = "conv", out = 4, kernel = 3, stride = 2}, "relu", {type = "maxpool", kernel = 2},'
            ' {type = "conv", out = 8, kernel = 3, in_degree = 2, taps = [4, 5]}, "relu"]\n'
            'tail = ["flatten", {type = "linear", out = 10}]\n'
            '[[exits]]\nat = 4\nlayers = ["gap", "flatten", {type = "linear", out = 10}]\n'
        )
    rc = main(["train", "--arch", str(path), "--data-dir", str(mnist_dir), *QUICK, "--out", str(tmp_path / "m.pt")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "tiny:" in out
    model = mcuflow.load(tmp_path / "m.pt")
    check_lowering(model, lower_model(model, "h"), torch.rand(4, 784).double().numpy())


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: a["head"].__setitem__(3, {"type": "conv", "out": 20, "kernel": 5, "in_degree": 6}),
         r"head\.4 \(conv\) in_degree 6: 20 outputs x 6 / 16 inputs is not a whole out-degree"),
        (lambda a: a["head"].append({"type": "linear", "out": 10}), r"head\.7 \(linear\) reads a vector"),
        (lambda a: a["head"].append({"type": "sigmoid"}), r"head\.7 has unknown layer type 'sigmoid'"),
        (lambda a: a["head"].append({"type": "maxpool", "kernel": 9}), r"kernel 9 is larger than its input"),
        (lambda a: a["exits"][0].__setitem__("at", 9), r"exits\.0 at 9: the head has 7 layers"),
        (lambda a: a["tail"].__setitem__(-1, {"type": "linear", "out": 9}), r"the tail gives 9 values"),
        (lambda a: a.__setitem__("colour", 1), "an architecture is an object"),
    ],
)  # fmt: skip
def test_bad_architectures_are_one_line(tmp_path, change, match):
    arch = json.loads(json.dumps(PRESETS["b-lenet-sparse"]))
    change(arch)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(arch))
    with pytest.raises(ConfigError, match=match):
        load_arch(None, path)


def test_mlp_options_are_refused_with_a_preset(capsys):
    rc = main(["train", "--preset", "b-lenet", "--sizes", "784,10", "--data-dir", "/nonexistent"])
    assert rc != 0 and "--sizes does not apply to --preset/--arch models" in capsys.readouterr().err
    rc = main(["train", "--preset", "b-lenet", "--arch", "x.json"])
    assert rc != 0 and "give --preset or --arch, not both" in capsys.readouterr().err
