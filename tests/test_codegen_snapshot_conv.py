"""The generated C of one tiny convolutional model, checked in (tests/snapshots/tiny_conv/): a change
to the conv code generator shows up in review as a diff of these files.

A deliberate change regenerates them:  MCUFLOW_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_codegen_snapshot_conv.py
"""

from __future__ import annotations

import difflib
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from mcuflow.codegen import render_library
from mcuflow.export import compile_graph
from mcuflow.ir.graph import ExitBranch, Graph, Relu, Shape

sys.path.insert(0, str(Path(__file__).parent))
from c.conv_graphs import conv, linear, pool  # noqa: E402

SNAPSHOT = Path(__file__).parent / "snapshots" / "tiny_conv"


def tiny_conv_model():
    """6x6x1 -> conv 3x3 pad 1 (1 -> 2, ReLU) -> max pool 2 (in place) -> conv 1x1 (2 -> 4, each output
    reading 1 of the 2 channels, structured) offloaded as a 3x3x4 map; an exit after the pool (avg pool 3 +
    linear -> 3 classes). Fixed seeds."""
    rng = np.random.default_rng(5)
    s0 = Shape(6, 6, 1)
    c1 = conv("conv1", s0, 2, 3, rng, pad=1)
    p1 = pool("pool1", c1.out_shape, 2)
    c2 = conv("conv2", p1.out_shape, 4, 1, rng, d_out=2)
    bp = pool("exit.pool", p1.out_shape, 3, op="avg")
    g = Graph("tiny_conv", s0.size, [c1, Relu("relu1", c1.n_out), p1, c2],
              [ExitBranch("exit", 3, [bp, linear("exit.fc", bp.n_out, 3, rng)])], 3,
              hashlib.sha256(b"tiny_conv").hexdigest(), input_shape=s0)  # fmt: skip
    calib = np.random.default_rng(6).uniform(0, 1, (32, g.input_len))
    return compile_graph(g, calib, exit_threshold=0.7)


def test_generated_conv_c_matches_the_snapshot():
    files = {name: text for name, text in render_library(tiny_conv_model()).items() if not name.startswith("kernels/")}
    if os.environ.get("MCUFLOW_UPDATE_SNAPSHOTS"):
        SNAPSHOT.mkdir(parents=True, exist_ok=True)
        for old in SNAPSHOT.iterdir():
            old.unlink()
        for name, text in files.items():
            (SNAPSHOT / name).write_text(text)
    assert sorted(p.name for p in SNAPSHOT.iterdir()) == sorted(files), "generated file set changed"
    for name, text in files.items():
        want = (SNAPSHOT / name).read_text()
        if text != want:
            diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), name, name, n=2))
            raise AssertionError(f"{name} differs from its snapshot (regenerate if intended):\n{diff[:6000]}")
