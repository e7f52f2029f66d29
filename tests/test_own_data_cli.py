"""Tier 1: ``--data`` on train, export, exits and link-sweep, with the digits of examples/digits.npz:
what the checkpoint records, what export calibrates on, and the one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

import mcuflow
from mcuflow.cli import main
from mcuflow.data import DataRecord, Normalization

DIGITS = ROOT / "examples" / "digits.npz"
SMALL = ["--sizes", "64,32,10", "--out-degrees", "8,10", "--no-progress"]


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "digits.pt"
    rc = main(["train", "--data", str(DIGITS), *SMALL, "--epochs", "4", "--limit", "300", "--lr", "1e-2",
               "--batch-size", "32", "--out", str(path)])  # fmt: skip
    assert rc == 0
    return path


def test_train_records_the_data_and_its_normalisation(digits_ckpt):
    model = mcuflow.load(digits_ckpt)
    record = DataRecord.from_meta(model.meta)
    assert record.name == "digits" and record.input_shape == [8, 8] and record.n_classes == 10
    assert record.normalization == Normalization(0.0, 16.0, "minmax")
    assert "digits.npz, training split" in record.source
    assert model.config.input_size is None and model.config.sizes[0] == 64  # 64 values: no padding


def test_train_pads_narrower_data_and_prints_the_split(tmp_path, capsys):
    out = tmp_path / "p.pt"
    rc = main(["train", "--data", str(DIGITS), "--sizes", "80,40,10", "--out-degrees", "4,10", "--epochs", "1",
               "--limit", "100", "--normalize", "meanstd", "--no-progress", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0 and "note: no test split in" in printed and "mean/std" in printed
    model = mcuflow.load(out)
    assert model.config.input_size == 64  # zero-padded 64 -> 80, as MNIST's 784 -> 800
    assert DataRecord.from_meta(model.meta).normalization.rule == "meanstd"


def test_train_on_mnist_records_pixels_over_255(tmp_path, mnist_dir):
    out = tmp_path / "m.pt"
    rc = main(["train", "--data-dir", str(mnist_dir), "--epochs", "1", "--limit", "300", "--test-limit", "100",
               "--no-progress", "--out", str(out)])  # fmt: skip
    assert rc == 0
    model = mcuflow.load(out)
    record = DataRecord.from_meta(model.meta)
    assert record.name == "MNIST" and record.normalization == Normalization(0.0, 255.0, "declared")
    assert model.config.input_size == 784  # as before: 784 pixels padded to 800


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--sizes", "32,16,10", "--out-degrees", "4,10"],
            "samples are 8x8 = 64 values but the model's first layer takes 32",
        ),
        (["--sizes", "64,32,5", "--out-degrees", "8,5"], "labels go up to 9 but the model has 5 outputs"),
        ([*SMALL, "--input-size", "60"], "--input-size 60 but the data's samples are 8x8 = 64"),
        ([*SMALL, "--normalize", "zscore"], "--normalize"),
        ([*SMALL, "--data-dir", "/tmp"], "give --data or --data-dir, not both"),
        (["--finetune-link", str(DIGITS), "--out", "x.pt"], "does not take --data"),
    ],
)
def test_train_refusals_come_before_training(tmp_path, capsys, args, message):
    rc = main(["train", "--data", str(DIGITS), "--epochs", "1", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1
    assert "trained in" not in out


def test_train_data_that_is_not_there(capsys):
    rc = main(["train", "--data", "/no/such/data.npz", *SMALL, "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "no data at /no/such/data.npz" in err and len(err.strip().splitlines()) == 1


def test_mcuflow_data_dir_gives_way_to_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MCUFLOW_DATA_DIR", str(tmp_path / "not-mnist"))
    rc = main(["train", "--data", str(DIGITS), *SMALL, "--epochs", "1", "--limit", "50"])
    assert rc == 0 and "digits.npz" in capsys.readouterr().out


def test_export_calibrates_on_the_data_as_recorded(digits_ckpt, tmp_path):
    from mcuflow.export import calibration_inputs, export

    res = export(digits_ckpt, tmp_path / "e", data=DIGITS, calibration_samples=200)
    (note,) = [n for n in res.notes if n.startswith("calibration:")]
    assert "digits.npz, training split" in note and "first 200 samples" in note and "x = (raw - 0) / 16" in note
    record = DataRecord.from_meta(mcuflow.load(digits_ckpt).meta)
    cal = calibration_inputs(200, data=DIGITS, record=record)
    calib = cal.x
    assert calib.shape == (200, 64) and calib.dtype == np.float64 and calib.max() == 1.0
    assert len(cal.check_x) == len(cal.check_y) > 0  # the next training samples, held out for the int8 check
    # A recorded rule wins over the one the data alone would give.
    declared = DataRecord.from_meta(
        {"data": record.to_meta() | {"normalization": {"shift": 0, "divisor": 32, "rule": "declared"}}}
    )
    half = calibration_inputs(200, data=DIGITS, record=declared)
    assert np.array_equal(half.x * 2, calib) and "declared" in half.source


def test_export_without_data_names_the_training_data(digits_ckpt, tmp_path, capsys):
    rc = main(["export", str(digits_ckpt), "-o", str(tmp_path / "e"), "--calibration-samples", "10"])
    err = capsys.readouterr().err
    assert rc == 1 and "takes 64 inputs but the calibration data has shape (10, 784)" in err and "pass --data" in err


def test_export_data_of_another_width(digits_ckpt, tmp_path, capsys):
    np.savez(tmp_path / "wide.npz", x=np.random.default_rng(0).random((20, 70)), y=np.arange(20) % 10)
    rc = main(["export", str(digits_ckpt), "-o", str(tmp_path / "e"), "--data", str(tmp_path / "wide.npz")])
    err = capsys.readouterr().err
    assert rc == 1 and "takes 64 inputs but the calibration data has shape (" in err and ", 70)" in err


def test_exits_on_the_digits(digits_ckpt, tmp_path, capsys):
    rc = main(["exits", str(digits_ckpt), "--data", str(DIGITS), "--json", str(tmp_path / "a.json")])
    assert rc == 0 and "exit" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())


def test_link_sweep_on_the_digits(digits_ckpt, tmp_path, capsys):
    rc = main(["link-sweep", str(digits_ckpt), "--data", str(DIGITS), "-o", str(tmp_path / "ls"), "--thresholds",
               "0,8", "--topks", "0,8", "--bits", "8,4", "-q"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "ls" / "link_sweep.json").read_text())
    assert "digits.npz, test split" in summary["data"] and summary["dense_int8"]["accuracy"] > 0.5


def test_run_takes_one_source_of_inputs(digits_ckpt, capsys):
    rc = main(["run", "--port", "/dev/null-port", "--model", str(digits_ckpt), "--data", str(DIGITS),
               "--input", "x.npy"])  # fmt: skip
    assert rc == 1 and "give one of --data-dir, --data and --input" in capsys.readouterr().err


def test_hil_data_that_is_not_there_fails_before_the_export(tmp_path, capsys):
    rc = main(["hil", str(ROOT / "examples" / "paper_sparse.pt"), "--data", str(tmp_path / "none.npz"),
               "--workdir", str(tmp_path / "w")])  # fmt: skip
    assert rc == 1 and "no data at" in capsys.readouterr().err and not (tmp_path / "w" / "export").exists()


def test_export_notes_inputs_the_int8_input_cannot_represent():
    from types import SimpleNamespace

    from mcuflow.export import _input_range_notes

    fixed = SimpleNamespace(input_scale=1 / 255, input_zp=-128)  # represents [0, 1]
    assert _input_range_notes(fixed, np.linspace(0, 1, 50)) == []
    (note,) = _input_range_notes(fixed, np.linspace(-1.5, 2, 50))
    assert "span [-1.5, 2]" in note and "represents [0, 1]" in note and "clipped" in note


@pytest.mark.parametrize("kind", ["idx", "png"])
def test_train_on_each_kind_of_path(tmp_path, capsys, kind):
    """The loader follows the path: an IDX directory of other data, a folder of class folders of PNGs."""
    from test_data_sources import write_idx_dir, write_pngs

    if kind == "idx":
        write_idx_dir(tmp_path / "d", n_train=40, n_test=10, shape=(4, 4))  # 16 values, 3 classes
        expected = "IDX data (d)"
    else:
        write_pngs(tmp_path / "d", classes=("a", "b", "c"), per_class=8, size=(4, 4))
        expected = "d"
    rc = main(["train", "--data", str(tmp_path / "d"), "--sizes", "16,8,3", "--out-degrees", "4,3", "--epochs", "1",
               "--no-progress", "--out", str(tmp_path / "m.pt")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    record = DataRecord.from_meta(mcuflow.load(tmp_path / "m.pt").meta)
    assert record.name == expected and record.input_shape == [4, 4] and record.normalization.rule == "minmax"
    assert record.classes == (["a", "b", "c"] if kind == "png" else None)


def test_run_reads_the_data_before_opening_the_port(digits_ckpt, tmp_path, capsys):
    rc = main(["run", "--port", "/dev/does-not-exist", "--model", str(digits_ckpt), "--data", str(tmp_path / "x.npz"),
               "--connect-timeout", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "no data at" in err and "cannot open port" not in err
