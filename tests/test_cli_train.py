"""``mcuflow train`` / ``mcuflow exits`` end to end on tiny subsets, and the progress helper."""

from __future__ import annotations

import io
import json
import os

import pytest

import mcuflow
from mcuflow.cli import main
from mcuflow.progress import progress


def test_train_writes_checkpoint_and_metrics(tmp_path, mnist_dir, capsys):
    ckpt, metrics = tmp_path / "m.pt", tmp_path / "m.json"
    rc = main(
        [
            "train",
            "--data-dir",
            str(mnist_dir),
            "--epochs",
            "1",
            "--limit",
            "600",
            "--test-limit",
            "200",
            "--lr",
            "0.02",
            "--out",
            str(ckpt),
            "--metrics-json",
            str(metrics),
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "2450 params" in out
    data = json.loads(metrics.read_text())
    assert data["params"]["main_path"] == 2450
    assert data["test_samples"] == 200 and data["train_samples"] == 600
    assert 0.0 <= data["accuracy"]["final"] <= 1.0 and len(data["accuracy"]["exits"]) == 1
    assert [j["density"] for j in data["junctions"]] == pytest.approx([0.05, 0.225, 1.0])
    umask = os.umask(0)
    os.umask(umask)
    for path in (ckpt, metrics):  # atomic writes must not leave mkstemp's 0600
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    model = mcuflow.load(ckpt)
    assert model.config.out_degrees == [2, 9, 10] and model.meta["accuracy"] == data["accuracy"]
    # non-TTY progress: plain lines, no carriage returns
    assert "train: " in err and "\r" not in err

    rc = main(["exits", str(ckpt), "--bundled", "--plot", str(tmp_path / "e.png"), "--json", str(tmp_path / "e.json")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "end-to-end" in out and (tmp_path / "e.png").stat().st_size > 1000
    assert json.loads((tmp_path / "e.json").read_text())["samples"] == 500


def test_train_deep_family_and_exit_shape(tmp_path, mnist_dir, capsys):
    rc = main(
        [
            "train",
            "--data-dir",
            str(mnist_dir),
            "--family",
            "deep",
            "--sizes",
            "800,5,5,10",
            "--split",
            "2",
            "--exit-at",
            "1,2",
            "--exit-hidden",
            "8",
            "--epochs",
            "1",
            "--limit",
            "300",
            "--test-limit",
            "100",
            "--no-progress",
            "--metrics-json",
            str(tmp_path / "d.json"),
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["params"]["main_path"] == 4095
    assert data["params"]["exits"] == [5 * 8 + 8 + 8 * 10 + 10] * 2
    assert err == ""


def test_train_with_teacher_round_trips(tmp_path, mnist_dir, capsys):
    """A dense:H teacher trained first, then a checkpoint as teacher (with --batchnorm); both load back."""
    base = ["train", "--data-dir", str(mnist_dir), "--epochs", "2", "--limit", "1000", "--test-limit", "200"]
    base += ["--lr", "0.02", "--no-progress"]
    first, first_json = tmp_path / "kd.pt", tmp_path / "kd.json"
    kd = ["--teacher", "dense:32", "--teacher-epochs", "3", "--kd-weight", "0.6"]
    rc = main([*base, *kd, "--out", str(first), "--metrics-json", str(first_json)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "teacher dense:32: training accuracy" in err and "2450 params" in out
    model = mcuflow.load(first)
    training = model.meta["training"]
    assert training["teacher"] == "dense:32" and training["distill_weight"] == 0.6 and training["teacher_epochs"] == 3
    assert json.loads(first_json.read_text())["training"] == training
    assert model.meta["accuracy"]["final"] > 0.3  # chance is 0.1

    second = tmp_path / "kd2.pt"
    rc = main([*base, "--teacher", str(first), "--kd-temperature", "2", "--batchnorm", "--out", str(second)])
    _, err = capsys.readouterr()
    assert rc == 0, err
    meta = mcuflow.load(second).meta["training"]
    assert meta["teacher"] == str(first) and meta["distill_temperature"] == 2.0 and meta["distill_weight"] == 0.5
    assert meta["batchnorm"] is True and "batchnorm" not in training
    # the BatchNorm was folded away: the checkpoint holds exactly the plain model's tensors
    assert mcuflow.load(second).state_dict().keys() == model.state_dict().keys()


def test_holdout_reports_on_the_last_training_images(tmp_path, mnist_dir, capsys):
    metrics = tmp_path / "h.json"
    args = ["train", "--data-dir", str(mnist_dir), "--epochs", "1", "--limit", "500", "--no-progress"]
    rc = main([*args, "--holdout", "1000", "--test-limit", "300", "--metrics-json", str(metrics)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "holdout accuracy final" in out and "on 300 images" in out
    data = json.loads(metrics.read_text())
    assert data["train_samples"] == 500 and data["test_samples"] == 300 and "--holdout" in data["evaluated_on"]
    rc = main([*args, "--holdout", "60000"])
    _, err = capsys.readouterr()
    assert rc == 1 and "leaves no training images" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--out-degrees", "3,9,10", "--sizes", "784,40,40,10"], "not a whole number"),
        (["--sizes", "800,40,10"], "needs --out-degrees"),
        (["--split", "4"], "split"),  # 3 junctions: 3 is the whole model on the device, 4 is none
        (["--exit-weight", "1,1"], "exit loss weights"),
        (["--sizes", "800,x"], "comma-separated integers"),
        (["--teacher", "dense:x"], "teacher"),
        (["--teacher", "missing.pt"], "neither dense"),
        (["--teacher", "dense:64", "--kd-weight", "2"], "distillation weight"),
        (["--teacher", "dense:64", "--teacher-epochs", "0"], "--teacher-epochs"),
        (["--holdout", "0"], "--holdout"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message, capsys):
    rc = main(["train", "--data-dir", str(tmp_path), *args])
    _, err = capsys.readouterr()
    assert rc == 1
    assert err.startswith("mcuflow: error:") and message in err and "Traceback" not in err


def test_missing_data_names_the_flag(tmp_path, capsys, monkeypatch):
    from mcuflow.data import mnist

    monkeypatch.setattr(mnist, "fetch", lambda url, timeout=0: (_ for _ in ()).throw(OSError("offline")))
    rc = main(["train", "--data-dir", str(tmp_path / "empty"), "--epochs", "1"])
    _, err = capsys.readouterr()
    assert rc == 1 and "--data-dir" in err and "MCUFLOW_DATA_DIR" in err


def test_train_help():
    from click.testing import CliRunner

    from mcuflow.cli import cli

    res = CliRunner().invoke(cli, ["train", "--help"])
    assert res.exit_code == 0
    for flag in ("--sizes", "--out-degrees", "--split", "--exit-at", "--exit-hidden", "--metrics-json", "--data-dir"):
        assert flag in res.output


def test_progress_plain_lines_when_not_a_tty():
    buf = io.StringIO()
    with progress(50, "work", stream=buf) as bar:
        for _ in range(50):
            bar.update(loss=0.5)
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert 5 <= len(lines) <= 11  # about every 10%, plus the last line
    assert lines[-1].startswith("work: 50/50 (100%)") and "loss=0.5" in lines[-1]


def test_progress_redraws_on_a_tty():
    buf = io.StringIO()
    with progress(3, "bar", stream=buf, tty=True) as bar:
        for _ in range(3):
            bar.update()
    text = buf.getvalue()
    assert "\r" in text and "3/3" in text and text.endswith("\n")


def test_progress_disabled_prints_nothing():
    buf = io.StringIO()
    with progress(3, "x", stream=buf, enabled=False) as bar:
        bar.update(3)
    assert buf.getvalue() == ""


def test_sweep_cli_writes_csv_and_plot(tmp_path, mnist_dir, capsys):
    out = tmp_path / "sw"
    rc = main(
        [
            "sweep",
            "--data-dir",
            str(mnist_dir),
            "--levels",
            "1",
            "--families",
            "shallow,sparse",
            "--epochs",
            "1",
            "--limit",
            "300",
            "--test-limit",
            "100",
            "--no-progress",
            "--out-dir",
            str(out),
        ]
    )
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    rows = (out / "table.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].split(",")[1:2] == ["shallow"] and ",2443," in rows[1] and ",2450," in rows[2]
    assert (out / "accuracy_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    assert "shallow" in stdout and "sparse" in stdout


def test_sweep_cli_rejects_bad_levels(capsys):
    assert main(["sweep", "--levels", "7"]) == 1
    assert "--levels" in capsys.readouterr().err
