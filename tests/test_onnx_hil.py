"""An ONNX head end to end: export, build, a QEMU session with the device's local answers, offloads
finished by a user's tail.onnx through onnxruntime or reported unfinished; `run` without a tail."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_tools
from torch import nn

from mcuflow.cli import main

sys.path.insert(0, str(Path(__file__).parent))

pytestmark = [pytest.mark.firmware, pytest.mark.slow]


class Head(nn.Module):
    """(N, 1, 28, 28) images -> (head output, exit logits), as a user would write it."""

    def __init__(self):
        super().__init__()
        self.flat, self.fc, self.exit = nn.Flatten(), nn.Linear(784, 24), nn.Linear(24, 10)

    def forward(self, x):
        h = torch.relu(self.fc(self.flat(x)))
        return h, self.exit(h)


@pytest.fixture(scope="module")
def onnx_files(mnist_dir, tmp_path_factory):
    from mcuflow.data import load_mnist

    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    train = load_mnist("train", mnist_dir, download=False)
    x = torch.from_numpy(train.images[:12000, None].astype(np.float32) / 255.0)
    y = torch.from_numpy(train.labels[:12000].astype(np.int64))
    torch.manual_seed(0)
    head, tail = Head(), nn.Sequential(nn.Linear(24, 10))
    opt = torch.optim.Adam([*head.parameters(), *tail.parameters()], lr=1e-2)
    for _ in range(300):
        idx = torch.randint(0, len(x), (128,))
        h, e = head(x[idx])
        loss = nn.functional.cross_entropy(e, y[idx]) + nn.functional.cross_entropy(tail(h), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = tmp_path_factory.mktemp("onnx")
    head.eval()
    tail.eval()
    torch.onnx.export(head, (torch.zeros(1, 1, 28, 28),), str(d / "head.onnx"), input_names=["x"])
    torch.onnx.export(tail, (torch.zeros(1, 24),), str(d / "tail.onnx"), input_names=["h"])
    return d / "head.onnx", d / "tail.onnx"


def _hil(tmp_path, capsys, *args) -> dict:
    out = tmp_path / "hil.json"
    rc = main(["hil", *map(str, args), "--board", "qemu-mps2-an386", "--samples", "120", "--exit-threshold", "0.8",
               "--no-profile", "-q", "--json", str(out)])  # fmt: skip
    assert rc in (0, None), capsys.readouterr().err
    return json.loads(out.read_text())


def test_onnx_head_without_a_tail_answers_locally_and_reports_the_rest(onnx_files, tmp_path, capsys):
    head, _ = onnx_files
    r = _hil(tmp_path, capsys, head)
    assert r["parity_mismatches"] == 0 and r["lost"] == 0
    assert 0 < r["unfinished"] < r["samples"]  # the exit answers some, the rest wait for a tail
    assert "offloads unfinished (no host tail" in capsys.readouterr().out


def test_onnx_head_with_the_users_tail_onnx(onnx_files, tmp_path, capsys):
    head, tail = onnx_files
    r = _hil(tmp_path, capsys, head, "--tail", tail)
    assert r["parity_mismatches"] == 0 and r["lost"] == 0 and r["unfinished"] == 0
    assert r["accuracy"] > 0.8 and r["quantization"]["loss_points"] <= 1.0


def test_run_takes_an_onnx_export_without_a_tail(onnx_files, tmp_path):
    from mcuflow.cli.cmd_run import _tail
    from mcuflow.export import export

    head, tail = onnx_files
    res = export(head, tmp_path / "export", calibration=np.random.default_rng(0).random((64, 784)))
    assert res.manifest.tail is None and res.manifest.source == "onnx"
    assert _tail(None, tmp_path / "export", "auto") is None  # offloads are reported unfinished
    assert _tail(None, tmp_path / "export", str(tail)).kind == "onnx"
