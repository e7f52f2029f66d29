"""``mcuflow run`` end to end against the host-compiled device (serve.c + fake head) on a pty."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import tty
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_tools

from mcuflow import checkpoint
from mcuflow.cli import main
from mcuflow.nn.config import build_model, paper_config

pytestmark = pytest.mark.toolchain
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def device_exe(tmp_path_factory):
    require_tools("gcc")
    spec = importlib.util.spec_from_file_location("link_build", HERE / "c" / "link" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)  # type: ignore[union-attr]
    return build.build_device(tmp_path_factory.mktemp("run_cli"))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(paper_config())
    path = checkpoint.save(model, tmp_path_factory.mktemp("ckpt") / "paper.pt")
    return path, checkpoint.model_hash(checkpoint.load(path))


class PtyDevice:
    """The fake device on the master side of a pty; the host opens the slave path."""

    def __init__(self, exe: Path, model_hash: str | None):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: a serial line
        env = dict(os.environ)
        if model_hash:
            env["MCUFLOW_FAKE_HASH"] = model_hash
        self.proc = subprocess.Popen([str(exe)], stdin=self.master, stdout=self.master, env=env)
        self.port = os.ttyname(self.slave)

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty_device(device_exe, ckpt):
    devices = []

    def start(model_hash):
        dev = PtyDevice(device_exe, model_hash)
        devices.append(dev)
        return dev

    yield start
    for dev in devices:
        dev.close()


def inputs(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-128, 128, (n, 784)).astype(np.int8)
    x[:, 0] = 0
    return x


def fake_intermediate(x: np.ndarray) -> np.ndarray | None:
    """Mirror of tests/c/link/fake_head.c: None when the device answers locally."""
    if int(x.astype(np.int64).sum()) % 2 == 0:
        return None
    return ((x[:40].astype(np.int16) + x[::-1][:40].astype(np.int16)) & 0xFF).astype(np.uint8).view(np.int8)


def test_run_finishes_offloads_with_the_tail(pty_device, ckpt, tmp_path, capsys):
    path, digest = ckpt
    dev = pty_device(digest)
    x = inputs(12)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(12) % 10)
    rc = main(["run", "--port", dev.port, "--model", str(path), "--input", str(tmp_path / "x.npy"),
               "--labels", str(tmp_path / "y.npy"), "--jsonl", "--timeout", "3"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    records = [json.loads(line) for line in out[:-1]]
    summary = json.loads(out[-1])["summary"]
    assert [r["index"] for r in records] == list(range(12))
    model = checkpoint.load(path)
    for r, xi in zip(records, x, strict=True):
        q = fake_intermediate(xi)
        if q is None:
            assert r["status"] == "local" and r["prediction"] == abs(int(xi.astype(np.int64).sum())) % 10
            assert r["bytes_up"] == 18
        else:
            assert r["status"] == "offload" and r["bytes_up"] == 66
            with torch.no_grad():
                logits = model.run_tail(torch.from_numpy((q.astype(np.float32) + 128) / 128)[None])
            assert r["prediction"] == int(logits.argmax())
        assert 794 <= r["bytes_down"] <= 797
    assert summary["samples"] == 12 and summary["lost"] == 0
    assert summary["local"] + summary["offloaded"] == 12 and summary["local"] * summary["offloaded"] > 0
    assert summary["accuracy"] == np.mean([r["correct"] for r in records])


def test_run_refuses_a_model_hash_mismatch(pty_device, ckpt, tmp_path, capsys):
    path, digest = ckpt
    dev = pty_device(None)  # the fake's default hash: bytes 0..31
    np.save(tmp_path / "x.npy", inputs(2))
    rc = main(["run", "--port", dev.port, "--model", str(path), "--input", str(tmp_path / "x.npy")])
    captured = capsys.readouterr()
    assert rc != 0
    assert "mcuflow: error: the device runs model 0001020304050607..." in captured.err
    assert digest[:16] in captured.err and "Traceback" not in captured.err
    assert "sample" not in captured.out


def test_run_reports_a_sample_without_answer(pty_device, ckpt, tmp_path, capsys):
    path, digest = ckpt
    dev = pty_device(digest)
    x = inputs(4, seed=1)
    x[2, 0] = 100  # the fake head sleeps 1.5 s on this one
    np.save(tmp_path / "x.npy", x)
    rc = main(["run", "--port", dev.port, "--model", str(path), "--input", str(tmp_path / "x.npy"),
               "--timeout", "1.0", "--retries", "0"])  # fmt: skip
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert rc != 0
    assert "1 of 4 samples got no answer" in captured.err
    assert lines[3].startswith("sample 2: LOST: no answer to INFER")
    assert lines[4].startswith("sample 3: class")  # the late answer to sample 2 was not taken for it
    assert "lost 1" in captured.out


def test_run_on_mnist(pty_device, ckpt, mnist_dir, capsys):
    path, digest = ckpt
    dev = pty_device(digest)
    rc = main(["run", "--port", dev.port, "--model", str(path), "--data-dir", str(mnist_dir), "--samples", "20"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("truth") == 20 and "samples 20: answered 20" in out and "accuracy" in out


def test_run_with_a_wrong_port(ckpt, capsys):
    path, _ = ckpt
    rc = main(["run", "--port", "/dev/does-not-exist", "--model", str(path), "--connect-timeout", "0"])
    err = capsys.readouterr().err
    assert rc != 0 and "cannot open port /dev/does-not-exist" in err


def test_run_with_an_export_uses_its_hash_and_numpy_tail(pty_device, ckpt, tmp_path, capsys):
    from mcuflow.export import export

    path, digest = ckpt
    calibration = np.random.default_rng(0).random((32, 784)).astype(np.float32)
    export(path, tmp_path / "export", calibration=calibration)
    meta = json.loads((tmp_path / "export" / "export.json").read_text())
    assert meta["model_hash"] == digest  # the hash the device carries is the checkpoint's
    dev = pty_device(digest)
    x = inputs(10, seed=3)
    np.save(tmp_path / "x.npy", x)
    rc = main(["run", "--port", dev.port, "--export", str(tmp_path / "export"), "--input", str(tmp_path / "x.npy"),
               "--jsonl", "--bye"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and dev.proc.wait(timeout=10) == 0  # BYE ended the device
    records = [json.loads(line) for line in out[:-1]]
    model = checkpoint.load(path)
    offloaded = 0
    for r, xi in zip(records, x, strict=True):
        q = fake_intermediate(xi)
        if q is not None:
            offloaded += 1
            with torch.no_grad():
                logits = model.run_tail(torch.from_numpy((q.astype(np.float32) + 128) / 128)[None])
            assert r["status"] == "offload" and r["prediction"] == int(logits.argmax())
    assert offloaded > 0


def test_run_refuses_an_export_of_another_checkpoint(ckpt, tmp_path, capsys):
    from mcuflow.export import export
    from mcuflow.nn import build_model, paper_config

    path, _ = ckpt
    torch.manual_seed(123)
    other = checkpoint.save(build_model(paper_config()), tmp_path / "other.pt")
    export(other, tmp_path / "export", calibration=np.random.default_rng(0).random((8, 784)))
    rc = main(["run", "--port", "/dev/null-port", "--model", str(path), "--export", str(tmp_path / "export")])
    err = capsys.readouterr().err
    assert rc != 0 and "was not made from" in err


def test_run_refuses_a_damaged_export_manifest(ckpt, tmp_path, capsys):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "export.json").write_text(json.dumps({"model_hash": "ab" * 32}))
    rc = main(["run", "--port", "/dev/null-port", "--export", str(tmp_path / "export")])
    err = capsys.readouterr().err
    assert rc == 1 and "is not an mcuflow export manifest" in err and len(err.strip().splitlines()) == 1


def test_run_input_encodings_give_the_same_answers(pty_device, ckpt, tmp_path, capsys):
    path, digest = ckpt
    x = np.where(np.random.default_rng(5).random((8, 784)) < 0.2, 5, -128).astype(np.int8)
    x[:, 1] = np.arange(8)  # some sums odd (offload), some even (local)
    np.save(tmp_path / "x.npy", x)
    results = {}
    for enc in ("dense", "bitmap"):
        dev = pty_device(digest)
        rc = main(["run", "--port", dev.port, "--model", str(path), "--input", str(tmp_path / "x.npy"),
                   "--jsonl", "--input-encoding", enc])  # fmt: skip
        assert rc == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:-1]]
        results[enc] = records
    assert [r["prediction"] for r in results["dense"]] == [r["prediction"] for r in results["bitmap"]]
    assert {r["status"] for r in results["dense"]} == {"local", "offload"}
    assert all(r["bytes_down"] >= 794 for r in results["dense"])
    assert all(r["bytes_down"] < 300 for r in results["bitmap"])
