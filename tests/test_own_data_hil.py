"""Tier 3: your own data end to end, on scikit-learn's 8x8 digits (examples/digits.npz): train, export
with its calibration, a QEMU HIL session bit-exact with the reference, and ``mcuflow run`` against the
same firmware checked against the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, require_tools

import mcuflow
from mcuflow.cli import main
from mcuflow.data import load_data

DIGITS = ROOT / "examples" / "digits.npz"
pytestmark = [pytest.mark.firmware, pytest.mark.slow]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small sparse 64-32-10 model, 8 epochs on 400 training digits (a second or two)."""
    d = tmp_path_factory.mktemp("digits")
    rc = main(
        ["train", "--data", str(DIGITS), "--sizes", "64,32,10", "--out-degrees", "8,10", "--epochs", "8",
         "--limit", "400", "--lr", "1e-2", "--batch-size", "32", "--no-progress", "--out", str(d / "digits.pt")]
    )  # fmt: skip
    assert rc == 0
    return d / "digits.pt"


@pytest.fixture(autouse=True)
def _tools():
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")


def test_hil_on_the_digits_is_bit_exact(digits_model, tmp_path, capsys):
    out = tmp_path / "hil.json"
    rc = main(["hil", str(digits_model), "--data", str(DIGITS), "--samples", "200", "--no-profile", "-q",
               "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    r = json.loads(out.read_text())
    assert r["samples"] == 200 and r["lost"] == 0 and r["errors"] == 0
    assert r["parity_mismatches"] == 0
    assert "digits.npz, test split" in r["data"]
    assert r["accuracy"] == pytest.approx(r["reference_accuracy"])
    assert r["accuracy"] > 0.6 and r["float_accuracy"] > 0.6  # chance is 0.1
    assert abs(r["accuracy"] - r["float_accuracy"]) < 0.05  # the device sees the inputs the model was trained on


def test_run_on_the_digits_checks_the_device_against_the_reference(digits_model, tmp_path, capsys):
    from mcuflow.boards import load_board
    from mcuflow.build import build
    from mcuflow.qemu import QemuSession

    rc = main(["export", str(digits_model), "-o", str(tmp_path / "export"), "--data", str(DIGITS)])
    assert rc == 0 and "calibration: " + str(DIGITS) in capsys.readouterr().out
    board = load_board("qemu-mps2-an386")
    elf = build(tmp_path / "export", board).elf
    with QemuSession(elf, board) as q:
        q.serial.close()  # `mcuflow run` opens the port itself
        rc = main(["run", "--port", q.url, "--model", str(digits_model), "--export", str(tmp_path / "export"),
                   "--data", str(DIGITS), "--samples", "40", "--jsonl", "--bye", "--fail-on-mismatch"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0, lines[-1]
    summary = json.loads(lines[-1])["summary"]
    assert summary["samples"] == 40 and summary["lost"] == 0
    assert summary["reference_checked"] == 40 and summary["reference_mismatches"] == 0
    assert summary["accuracy"] > 0.6
    records = [json.loads(line) for line in lines[:-1]]
    expected = load_data(DIGITS).for_model("test", mcuflow.data.DataRecord.from_meta(mcuflow.load(digits_model).meta))
    assert [r["truth"] for r in records] == expected.y[:40].tolist()
    assert all(r["reference_mismatch"] is None for r in records)


def test_run_with_inputs_reports_what_differs_from_the_reference(digits_model, tmp_path, capsys):
    """``run --input x.npy --export``: each answer checked; a wrong export is reported, sample by sample."""
    from mcuflow.boards import load_board
    from mcuflow.build import build
    from mcuflow.qemu import QemuSession

    assert main(["export", str(digits_model), "-o", str(tmp_path / "export"), "--data", str(DIGITS)]) == 0
    x = load_data(DIGITS).test().inputs()[:60]
    np.save(tmp_path / "x.npy", x)
    board = load_board("qemu-mps2-an386")
    elf = build(tmp_path / "export", board).elf
    # The same export with another exit threshold: the device answers differently from this reference.
    assert main(["export", str(digits_model), "-o", str(tmp_path / "other"), "--data", str(DIGITS),
                 "--exit-threshold", "0.1"]) == 0  # fmt: skip
    capsys.readouterr()
    with QemuSession(elf, board) as q:
        q.serial.close()
        rc = main(["run", "--port", q.url, "--export", str(tmp_path / "export"), "--input", str(tmp_path / "x.npy")])
        same = capsys.readouterr().out
    assert rc == 0 and "reference: 0 of 60 answers differ" in same
    with QemuSession(elf, board) as q:
        q.serial.close()
        rc = main(["run", "--port", q.url, "--export", str(tmp_path / "other"), "--input", str(tmp_path / "x.npy"),
                   "--fail-on-mismatch"])  # fmt: skip
        captured = capsys.readouterr()
    assert rc == 3 and "REFERENCE MISMATCH" in captured.out
    assert "answers differ from the numpy reference" in captured.err
