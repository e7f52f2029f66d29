"""Golden tests of the C kernels: every storage format, on the plain-C path and on the DSP path (on the
host through C models of SMLAD/SXTB16, under QEMU with the real instructions on Cortex-M4 and the
plain path on Cortex-M3), on odd shapes, against the numpy reference; and the permutation plan."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from mcuflow import reference
from mcuflow.export import compile_graph
from mcuflow.passes.formats import pack
from mcuflow.passes.kernels import device_values, permutation_plan, plan_kernels
from mcuflow.passes.memory import plan_memory
from mcuflow.sparsity.patterns import structured_params

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import HERE, assert_parity, chain_graph, compile_c, run_harness, write_library  # noqa: E402

# (name, widths, out-degrees, exits (at, hidden), formats of the head layers)
MODELS = [
    # one layer of each format in one model; the exit is an odd-width dense layer
    ("mixed", [300, 30, 24, 24, 12], [2, 8, 6, 4], [(2, [7])], ["index_free", "fixed", "csr", "dense"]),
    # odd width and degree: unaligned windows, rows straddling pass boundaries, two index-free layers
    ("odd", [97, 97, 97], [5, 3], [(1, [])], ["index_free", "index_free"]),
    # the paper's first junction: aligned LDRD windows, a whole pass per 20 rows
    ("paper", [800, 40], [2], [(1, [])], ["index_free"]),
    # degree below four and widths of one
    ("tiny", [7, 1, 5], [1, 5], [(1, [])], ["index_free", "dense"]),
]


def _model(case, seed: int = 0, small_ram: bool = False):
    """The case's model with its head layers in the given formats; ``small_ram``: no scratch buffer."""
    name, widths, degrees, exits, formats = case
    g = chain_graph(widths, degrees, exits, seed=seed, num_classes=4)
    calib = np.random.default_rng(seed + 1).uniform(0, 1, (64, g.input_len))
    q = compile_graph(g, calib, exit_threshold=0.6)
    for layer, fmt in zip(q.head, formats, strict=True):
        layer.packed = pack(layer, fmt)
    plan_kernels(q, small_ram=small_ram)
    plan_memory(q)
    return q


def _inputs(n_in: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, n_in)).astype(np.int8)
    x[0] = 127  # extremes: the accumulator bounds
    x[1] = -128
    return x


@pytest.mark.parametrize("path", ["plain", "dsp_emulated", "small_ram"])
@pytest.mark.parametrize("case", MODELS, ids=lambda c: c[0])
def test_host_kernels_match_reference(case, path, tmp_path):
    require_tools("gcc")
    q = _model(case, small_ram=path == "small_ram")
    assert (q.plan.scratch_bytes == 0) == (path == "small_ram")
    lib = write_library(q, tmp_path / "lib")
    flags = ["-I", str(lib)] + {"plain": [], "dsp_emulated": ["-DMCUFLOW_EMULATE_DSP=1"], "small_ram": []}[path]
    exe = compile_c(sorted(lib.glob("*.c")) + [HERE / "harness.c"], tmp_path / "harness", "gcc", flags)
    x = _inputs(q.input_len, 300, 11)
    out = run_harness(exe, x, len(q.exits), q.num_classes, q.intermediate_len, tmp_path)
    ref = reference.run(q, x)
    assert_parity(out, ref)
    assert 0 < ref.exited.sum() < len(x) or case[0] == "tiny"


def _qemu_results(lib: Path, board: str, inputs: np.ndarray, cflags: tuple[str, ...]) -> list[dict]:
    from mcuflow.build import build
    from mcuflow.qemu import QemuSession

    res = build(lib, board, app="selftest", extra_cflags=cflags)
    out = []
    with QemuSession(res.elf, res.board, read_timeout=30, boot_token=b"ready\n") as q:
        for x in inputs:
            q.write(b"r" + x.tobytes())
            out.append(dict(re.findall(r"(\w+)=(\S+)", q.read_until(b"\n", timeout=30).decode())))
        q.write(b"l" + bytes([0]) + (3).to_bytes(4, "little"))
        out.append(dict(re.findall(r"(\w+)=(\S+)", q.read_until(b"\n", timeout=30).decode())))
    return out


@pytest.mark.firmware
@pytest.mark.parametrize(
    "board,small_ram",
    [("qemu-mps2-an386", False), ("qemu-mps2-an385", False), ("qemu-mps2-an386", True)],
    ids=["m4", "m3", "m4-small-ram"],
)
def test_qemu_kernels_match_reference(board, small_ram, tmp_path):
    """The real SMLAD/LDRD code on Cortex-M4, the plain path on Cortex-M3, against the reference."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    cflags = ()
    for case in MODELS[:3]:
        q = _model(case, seed=3, small_ram=small_ram)
        lib = write_library(q, tmp_path / case[0])
        x = _inputs(q.input_len, 6, 5)
        ref = reference.run(q, x)
        got = _qemu_results(lib, board, x, cflags)
        for i in range(len(x)):
            r = got[i]
            assert r["rc"] == "0"
            assert int(r["exited"]) == ref.exited[i], (case[0], i)
            if ref.exited[i]:
                assert (int(r["label"]), int(r["conf"])) == (ref.label[i], ref.confidence_q15[i]), (case[0], i)
            else:
                want = ref.intermediate[i].astype(np.uint8).tobytes().hex()
                assert r["inter"] == want, (case[0], i)
        layer = got[-1]  # the per-layer benchmark command runs the first layer's kernel
        assert layer["format"] == case[4][0] and int(layer["count"]) > q.head[0].nnz


@pytest.mark.parametrize(
    "n,out,deg,seed", [(800, 40, 2, 0), (97, 97, 5, 1), (300, 30, 2, 2), (7, 1, 1, 0), (1, 5, 5, 0), (256, 16, 1, 3)]
)
def test_permutation_plan_covers_every_column_once(n, out, deg, seed):
    """Replays the device's class walk (mcuflow_permute) in Python: xp[u] = x[(u * p) mod n]."""
    p = structured_params(n, out, deg, seed).p
    m, delta = permutation_plan(n, p)
    assert 1 <= m <= n and delta != 0
    assert (-(-n // m) - 1) * abs(delta) < n or n == 1  # at most one wrap per class
    got = np.full(n, -1)
    c = 0
    for j in range(m):
        count = n // m + (1 if j < n % m else 0)
        for i in range(count):
            got[j + i * m] = (c + i * delta) % n
        c = (c + p) % n
    np.testing.assert_array_equal(got, (np.arange(n) * p) % n)


def test_device_weight_order_pairs_for_sxtb16():
    """Dense rows meet int16 inputs: stored (w0, w2, w1, w3) per group, a partial last group as is. Index-free
    rows meet int8 inputs, unpacked by SXTB16 the same way on both sides: natural order."""
    q = _model(MODELS[0])
    pw = q.exits[0].layers[1].packed  # 7 -> 4: a group and a partial group
    assert pw.format == "dense" and pw.n_in % 4 != 0
    dev = device_values(pw).reshape(pw.n_out, pw.n_in)
    nat = pw.values.reshape(pw.n_out, pw.n_in)
    full = pw.n_in & ~3
    for g in range(0, full, 4):
        np.testing.assert_array_equal(dev[:, [g, g + 2, g + 1, g + 3]], nat[:, g : g + 4])
    np.testing.assert_array_equal(dev[:, full:], nat[:, full:])  # the partial last group stays in order
    odd = _model(MODELS[1]).head[0].packed
    np.testing.assert_array_equal(device_values(odd), odd.values)


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_strict_compile_of_both_paths(compiler, tmp_path):
    """-Wconversion -Wshadow clean on both variants and without scratch, with gcc and clang."""
    import subprocess

    require_tools(compiler)
    for small_ram, flag in ((False, "-DMCUFLOW_EMULATE_DSP=0"), (False, "-DMCUFLOW_EMULATE_DSP=1"), (True, "")):
        lib = write_library(_model(MODELS[0], small_ram=small_ram), tmp_path / f"lib{small_ram:d}")
        res = subprocess.run(
            [compiler, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion",
             "-Wno-sign-conversion", *([flag] if flag else []), "-c", str(lib / "mcuflow_model.c"),
             "-o", str(tmp_path / "k.o")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
