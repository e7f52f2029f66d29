"""The generated C of one tiny model, checked in (tests/snapshots/tiny/): any change to the code
generator shows up in review as a diff of these files.

A deliberate change regenerates them:  MCUFLOW_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_codegen_snapshot.py
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

import numpy as np

from mcuflow.codegen import render_library
from mcuflow.export import compile_graph
from mcuflow.passes import pack, plan_kernels, plan_memory

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import chain_graph  # noqa: E402

SNAPSHOT = Path(__file__).parent / "snapshots" / "tiny"


def tiny_model():
    """A 10-input head padded to 12: an index-free 12 -> 6 junction (in-degree 4), a fixed 6 -> 4 one, and a
    dense exit after the first junction; every value comes from fixed seeds."""
    g = chain_graph([12, 6, 4], [2, 2], [(1, [])], input_len=10, seed=3, num_classes=3)
    g.model_hash = "0123456789abcdef" * 4
    g.name = "tiny"
    calib = np.random.default_rng(4).uniform(0, 1, (32, g.input_len))
    q = compile_graph(g, calib, exit_threshold=0.7)
    q.head[1].packed = pack(q.head[1], "fixed")
    plan_kernels(q)
    plan_memory(q)
    assert [layer.packed.format for layer in q.head] == ["index_free", "fixed"]
    return q


def test_generated_c_matches_the_snapshot():
    files = {name: text for name, text in render_library(tiny_model()).items() if not name.startswith("kernels/")}
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
