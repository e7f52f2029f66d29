"""The CLI's bad-input corpus: every case must end with exactly one `mcuflow: error:` line on
stderr, a non-zero exit, no traceback (unless --debug) and no partial output."""

from __future__ import annotations

import json
import random
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

from mcuflow import checkpoint
from mcuflow.cli import main
from mcuflow.link.messages import LocalResult
from mcuflow.link.sim import SimDevice

CKPT = ROOT / "examples" / "paper_sparse.pt"
TINY_BOARD = """name = "tiny-m0"
description = "a board far too small for any model (bad-input corpus)"
cpu = "cortex-m0"
fpu = "none"
float_abi = "soft"
clock_hz = 16_000_000
chip = "none"
stack_bytes = 256

[memory]
flash_origin = 0x00000000
flash_bytes = 1024
ram_origin = 0x20000000
ram_bytes = 512

[uart]
driver = "cmsdk-apb-uart"
base = 0x40004000
baud = 115200
clock_hz = 16_000_000

[counter]
kind = "systick"
unit = "cycles"
"""


@dataclass
class Case:
    argv: list[str]
    must_not_exist: list[Path]
    match: str  # a word the error line must contain (it names the problem)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_input_export") / "export"
    assert main(["export", str(CKPT), "-o", str(d)]) == 0
    return d


def _config_with(tmp: Path, name: str, **changes) -> Path:
    """paper_sparse.pt with its JSON config edited (as a hand-made or foreign tool would)."""
    payload = torch.load(CKPT, weights_only=True)
    config = json.loads(payload["config"])
    config.update(changes)
    payload["config"] = json.dumps(config)
    torch.save(payload, tmp / name)
    return tmp / name


def _sim_server(model_hash: bytes) -> int:
    """A device on a TCP port that runs some other model (its HELLO carries ``model_hash``)."""
    dev = SimDevice(lambda x: LocalResult(0, 1, 1, 1), model_hash)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with listener:
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(4096):
                    if out := dev.feed(data):
                        conn.sendall(out)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def _bin_without(tmp: Path, *missing: str) -> str:
    """A PATH directory with every tool mcuflow may call except ``missing``."""
    d = tmp / "bin"
    d.mkdir(exist_ok=True)
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-objcopy", "arm-none-eabi-objdump",
                 "arm-none-eabi-nm", "arm-none-eabi-readelf", "qemu-system-arm", "gcc", "cc", "clang"):  # fmt: skip
        path = shutil.which(tool)
        if path and tool not in missing:
            (d / tool).symlink_to(path)
    return str(d)


CASES: dict[str, Callable[[Path, pytest.MonkeyPatch, Path], Case]] = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def output_under_a_file(t, mp, ex):
    """Outputs that cannot be written are refused before any training or session starts."""
    (t / "plain").write_text("x")
    return Case(["hil", str(CKPT), "--json", str(t / "plain" / "hil.json")], [], "is not a directory")


@case
def train_output_unwritable(t, mp, ex):
    return Case(["train", "--out", "/proc/mcuflow-model.pt", "--epochs", "1"], [], "cannot write in /proc")


@case
def export_output_unwritable(t, mp, ex):
    return Case(["export", str(CKPT), "-o", "/proc/mcuflow-export"], [], "cannot write in /proc")


@case
def report_output_is_a_directory(t, mp, ex):
    (t / "dir.html").mkdir()
    return Case(["report", str(t / "r.json"), "-o", str(t / "dir.html")], [], "is a directory")


@case
def usage_mistake(t, mp, ex):
    return Case(["hil", str(CKPT), "--samples", "many"], [], "not a valid integer")


@case
def checkpoint_missing(t, mp, ex):
    return Case(["export", str(t / "nope.pt"), "-o", str(t / "out")], [t / "out"], "nope.pt")


@case
def checkpoint_corrupt(t, mp, ex):
    (t / "bad.pt").write_bytes(random.Random(5).randbytes(5000))
    return Case(["export", str(t / "bad.pt"), "-o", str(t / "out")], [t / "out"], "bad.pt")


@case
def checkpoint_truncated(t, mp, ex):
    data = CKPT.read_bytes()
    (t / "half.pt").write_bytes(data[: len(data) // 2])
    return Case(["export", str(t / "half.pt"), "-o", str(t / "out")], [t / "out"], "half.pt")


@case
def checkpoint_empty(t, mp, ex):
    (t / "empty.pt").write_bytes(b"")
    return Case(["export", str(t / "empty.pt"), "-o", str(t / "out")], [t / "out"], "empty.pt")


@case
def checkpoint_tiny_junk(t, mp, ex):
    (t / "junk.pt").write_bytes(b"junk")
    return Case(["export", str(t / "junk.pt"), "-o", str(t / "out")], [t / "out"], "junk.pt")


@case
def checkpoint_foreign_state_dict(t, mp, ex):
    torch.save({"fc.weight": torch.zeros(3, 3)}, t / "foreign.pt")
    return Case(["export", str(t / "foreign.pt"), "-o", str(t / "out")], [t / "out"], "foreign.pt")


@case
def checkpoint_with_pickled_code(t, mp, ex):
    torch.save({"format": "mcuflow", "obj": Path("/")}, t / "code.pt")  # needs unpickling a class
    return Case(["export", str(t / "code.pt"), "-o", str(t / "out")], [t / "out"], "code.pt")


@case
def checkpoint_non_integral_degree(t, mp, ex):
    ck = _config_with(t, "deg.pt", sizes=[800, 30, 40, 10])  # 800*2/30 is not a whole in-degree
    return Case(["export", str(ck), "-o", str(t / "out")], [t / "out"], "degree")


@case
def checkpoint_unsupported_layer(t, mp, ex):
    ck = _config_with(t, "conv.pt", family="conv2d")
    return Case(["export", str(ck), "-o", str(t / "out")], [t / "out"], "conv2d")


@case
def checkpoint_weights_do_not_match_config(t, mp, ex):
    payload = torch.load(CKPT, weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("weight"))
    payload["state_dict"][key] = torch.zeros(2, 2)
    torch.save(payload, t / "shape.pt")
    return Case(["export", str(t / "shape.pt"), "-o", str(t / "out")], [t / "out"], "shape.pt")


@case
def onnx_garbage(t, mp, ex):
    (t / "bad.onnx").write_bytes(b"\x08\x07not a protobuf at all" * 10)
    return Case(["export", str(t / "bad.onnx"), "-o", str(t / "out")], [t / "out"], "ONNX")


@case
def onnx_unsupported_op(t, mp, ex):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 2, 3)

        def forward(self, x):
            return self.conv(x.unsqueeze(1)).flatten(1)

    torch.onnx.export(Net(), (torch.zeros(1, 16),), str(t / "conv.onnx"), dynamo=False)
    return Case(["export", str(t / "conv.onnx"), "-o", str(t / "out")], [t / "out"], "Conv")


@case
def unknown_board(t, mp, ex):
    return Case(["export", str(CKPT), "-o", str(t / "out"), "--board", "no-such-board"], [t / "out"], "no-such-board")


@case
def model_over_board_budget(t, mp, ex):
    (t / "tiny.toml").write_text(TINY_BOARD)
    return Case(["export", str(CKPT), "-o", str(t / "out"), "--board", str(t / "tiny.toml")], [t / "out"], "RAM")


@case
def board_file_malformed(t, mp, ex):
    (t / "broken.toml").write_text("name = [unterminated\n")
    return Case(["export", str(CKPT), "-o", str(t / "out"), "--board", str(t / "broken.toml")], [t / "out"], "broken")


@case
def exit_threshold_out_of_range(t, mp, ex):
    return Case(["export", str(CKPT), "-o", str(t / "out"), "--exit-threshold", "1.5"], [t / "out"], "threshold")


@case
def output_dir_unwritable(t, mp, ex):
    (t / "afile").write_text("x")  # root ignores permissions, so the parent is a file instead
    return Case(["export", str(CKPT), "-o", str(t / "afile" / "out")], [t / "afile" / "out"], "afile")


@case
def build_export_dir_missing(t, mp, ex):
    return Case(["build", str(t / "noexport"), "--board", "qemu-mps2-an386"], [t / "noexport"], "noexport")


@case
def build_export_dir_not_an_export(t, mp, ex):
    (t / "empty").mkdir()
    return Case(["build", str(t / "empty"), "--board", "qemu-mps2-an386"], [t / "empty" / "build"], "empty")


@case
def build_missing_toolchain(t, mp, ex):
    d = t / "export"
    shutil.copytree(ex, d)
    mp.setenv("PATH", _bin_without(t, "arm-none-eabi-gcc"))
    return Case(["build", str(d), "--board", "qemu-mps2-an386"], [d / "build", d / "build.json"], "arm-none-eabi-gcc")


@case
def hil_missing_qemu(t, mp, ex):
    mp.setenv("PATH", _bin_without(t, "qemu-system-arm"))
    out = t / "hil.json"
    argv = ["hil", str(CKPT), "-n", "5", "--workdir", str(t / "w"), "--json", str(out), "-q"]
    return Case(argv, [out], "qemu-system-arm")


@case
def hil_hardware_board(t, mp, ex):
    out = t / "hil.json"
    return Case(["hil", str(CKPT), "--board", "nucleo-f401re", "--json", str(out)], [out], "nucleo-f401re")


@case
def hil_bad_fault_spec(t, mp, ex):
    out = t / "hil.json"
    return Case(["hil", str(CKPT), "--faults", "drop=lots", "--json", str(out)], [out], "drop=lots")


@case
def run_wrong_port(t, mp, ex):
    return Case(["run", "--port", str(t / "ttyNOPE"), "--export", str(ex), "--connect-timeout", "0"], [], "ttyNOPE")


@case
def run_model_hash_mismatch(t, mp, ex):
    port = _sim_server(bytes(32))
    argv = ["run", "--port", f"socket://127.0.0.1:{port}", "--export", str(ex), "--samples", "3"]
    return Case(argv, [], "model")


@case
def run_input_wrong_shape(t, mp, ex):
    np.save(t / "x.npy", np.zeros((3, 100), np.int8))
    port = _sim_server(bytes.fromhex(json.loads((ex / "export.json").read_text())["model_hash"]))
    argv = ["run", "--port", f"socket://127.0.0.1:{port}", "--export", str(ex), "--input", str(t / "x.npy")]
    return Case(argv, [], "x.npy")


@case
def run_input_not_npy(t, mp, ex):
    (t / "x.npy").write_bytes(b"PK\x03\x04 zip, not npy")
    port = _sim_server(bytes.fromhex(json.loads((ex / "export.json").read_text())["model_hash"]))
    argv = ["run", "--port", f"socket://127.0.0.1:{port}", "--export", str(ex), "--input", str(t / "x.npy")]
    return Case(argv, [], "x.npy")


@case
def run_tail_weights_truncated(t, mp, ex):
    copy = shutil.copytree(ex, t / "export")
    data = (copy / "tail.npz").read_bytes()
    (copy / "tail.npz").write_bytes(data[: len(data) // 2])
    port = _sim_server(bytes.fromhex(json.loads((ex / "export.json").read_text())["model_hash"]))
    argv = ["run", "--port", f"socket://127.0.0.1:{port}", "--export", str(copy), "--samples", "3"]
    return Case(argv, [], "tail")


@case
def train_non_integral_degree(t, mp, ex):
    out = t / "m.pt"
    argv = ["train", "--sizes", "784,100,10", "--out-degrees", "3,2", "--epochs", "1", "--out", str(out)]
    return Case(argv, [out], "degree")


@case
def train_corrupt_data(t, mp, ex):
    (t / "mnist").mkdir()
    (t / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    out = t / "m.pt"
    argv = ["train", "--data-dir", str(t / "mnist"), "--epochs", "1", "--out", str(out)]
    return Case(argv, [out], "train-images")


@case
def report_corrupt_json(t, mp, ex):
    (t / "hil.json").write_text("{not json")
    out = t / "r.html"
    return Case(["report", str(t / "hil.json"), "-o", str(out)], [out], "hil.json")


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gives_one_clear_error_line(name, tmp_path, monkeypatch, capsys, export_dir):
    monkeypatch.delenv("MCUFLOW_DATA_DIR", raising=False)
    c = CASES[name](tmp_path, monkeypatch, export_dir)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(c.argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("mcuflow: error:")]
    assert code != 0, err
    assert len(errors) == 1, err
    print(f"\n{name}: {errors[0][:160]}")
    assert "Traceback" not in err and "internal error" not in err, err
    assert c.match.lower() in errors[0].lower(), errors[0]
    for p in c.must_not_exist:
        assert not p.exists(), f"partial output left: {p}"
    leftovers = [n for n in sorted(p.name for p in tmp_path.iterdir()) if n not in before and n.startswith(".")]
    assert not leftovers, f"temporary files left: {leftovers}"


def test_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"junk")
    code = main(["--debug", "export", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" in err and "mcuflow: error:" in err


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 20


def test_model_hash_of_a_checkpoint_is_stable():
    """The hash-mismatch case relies on the export's hash being the checkpoint's."""
    assert checkpoint.model_hash(checkpoint.load(CKPT)) == checkpoint.model_hash(checkpoint.load(CKPT))
