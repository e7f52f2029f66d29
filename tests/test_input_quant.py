"""Input quantisation comes from the calibration data (or the user), and export reports what int8 costs
against the float model on held-out inputs, warning when it is too much."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import mcuflow
from mcuflow.errors import ConfigError
from mcuflow.export import export
from mcuflow.nn import build_model, paper_config
from mcuflow.passes.quantize import InputQuant

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import train_quick  # noqa: E402


@pytest.fixture(scope="module")
def standardised(mnist_dir, tmp_path_factory):
    """A paper-shaped model trained on standardised MNIST (mean 0, std 1), and held-out inputs."""
    from mcuflow.data import load_mnist

    train = load_mnist("train", mnist_dir, download=False)
    x = train.images.reshape(len(train), -1).astype(np.float32) / 255.0
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    y = train.labels.astype(np.int64)
    model = train_quick(build_model(paper_config()), x[:20000], y[:20000], steps=400)
    path = mcuflow.save(model, tmp_path_factory.mktemp("std") / "std.pt")
    return path, x[30000:31500], y[30000:31500]


def test_standardised_inputs_calibrate_their_own_scale(standardised, tmp_path):
    path, x, y = standardised
    res = export(path, tmp_path / "lib", calibration=x, calibration_labels=y)
    q = res.model
    assert q.input_zp > -128 and q.input_scale > 1 / 255  # negative inputs exist: not the pixel mapping
    check = res.manifest.quantization.check
    assert check is not None and check.held_out and check.samples == len(x) // 5
    assert check.passed and check.agreement >= 0.98
    assert abs(check.float_accuracy - check.int8_accuracy) <= 0.01  # within one point of float
    assert not any(n.startswith("WARNING") for n in res.notes)


def test_a_poor_declared_input_scale_is_reported_not_hidden(standardised, tmp_path):
    """The old fixed pixel mapping (1/255, -128) clips every negative standardised input: export warns."""
    path, x, y = standardised
    res = export(
        path, tmp_path / "lib", calibration=x, calibration_labels=y, input_scale=1 / 255, input_zero_point=-128
    )
    check = res.manifest.quantization.check
    assert not check.passed
    assert check.float_accuracy - check.int8_accuracy > 0.05
    assert any(n.startswith("WARNING: int8 agrees with float on") for n in res.notes)
    assert res.manifest.quantization.input_source == "declared scale and zero point"


def test_declared_range_and_bad_declarations():
    q = InputQuant.declared(None, None, (-1.0, 3.0))
    assert q.zero_point == round(-128 + 255 / 4) and q.scale == pytest.approx(4 / 255)
    assert InputQuant.declared(None, None, None) is None
    for args, msg in [
        ((0.1, None, None), "go together"),
        ((-1.0, 0, None), "positive"),
        ((0.1, 200, None), r"-128\.\.127"),
        ((None, None, (2.0, 1.0)), "LO < HI"),
        ((0.1, 0, (0.0, 1.0)), "not both"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            InputQuant.declared(*args)


def test_cli_input_options_reach_the_export(standardised, tmp_path, capsys, mnist_dir):
    from mcuflow.cli import main

    path, _, _ = standardised
    out = tmp_path / "lib"
    rc = main(["export", str(path), "-o", str(out), "--data-dir", str(mnist_dir), "--calibration-samples", "50",
               "--input-range", "-0.5,3"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "declared range [-0.5, 3]" in text and "int8 agrees with float" in text
    assert "MCUFLOW_INPUT_SCALE " in (out / "mcuflow_model.h").read_text()
    rc = main(["export", str(path), "-o", str(out), "--input-range", "1"])
    assert rc == 1 and "--input-range must be LO,HI" in capsys.readouterr().err
