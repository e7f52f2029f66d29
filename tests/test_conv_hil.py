"""A convolutional head through `mcuflow hil` under QEMU: export, firmware, early exits after a conv
block decided on the device, a feature map offloaded, parity 0 against the numpy reference.

The torch side lowers trained CNNs; until then the head is a hand-built float graph (random weights),
handed to the export as an ONNX front end would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import require_tools

sys.path.insert(0, str(Path(__file__).parent))
from c.conv_graphs import small_cnn  # noqa: E402


@pytest.mark.firmware
@pytest.mark.parametrize("board,profile", [("qemu-mps2-an386", True), ("qemu-mps2-an385", False)])
def test_conv_head_hil_parity(board, profile, tmp_path, monkeypatch, mnist_dir):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    import mcuflow.export
    import mcuflow.frontend
    from mcuflow.hil import run_hil

    graph = small_cnn(c1=5, c2=10, d_out=4, side=28, classes=10, stride=2)
    monkeypatch.setattr(mcuflow.export, "graph_from_onnx", lambda path: graph)
    monkeypatch.setattr(mcuflow.frontend, "graph_from_onnx", lambda path: graph)
    source = tmp_path / "cnn.onnx"
    source.write_bytes(b"")
    r = run_hil(source, board, samples=40, data_dir=mnist_dir, exit_threshold=0.3, profile=profile,
                show_progress=False, log=lambda *a: None, calibration_samples=64)  # fmt: skip
    assert r.parity_mismatches == 0 and r.lost == 0
    assert 0 < r.exit_rate < 1  # answered after the first conv block, and feature maps offloaded
    if profile:
        assert {"conv1", "pool1", "conv2", "exit0.pool"} <= set(r.layer_instructions)
