"""Generated C: strict compiles (gcc, clang, arm-none-eabi-gcc), bit-exact parity with the numpy
reference for every storage format on odd shapes, the index-free column generator, and
injection-safe identifiers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from mcuflow import reference
from mcuflow.codegen import C_KEYWORDS, c_comment, c_identifier, render_library
from mcuflow.export import compile_graph
from mcuflow.sparsity.patterns import structured_columns, structured_params

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import (  # noqa: E402
    HERE,
    KERNELS,
    assert_parity,
    c_vs_reference,
    chain_graph,
    compile_c,
    write_library,
)

# (name, widths, out-degrees (None: dense junction), exits (at, hidden), input_len)
CASES = [
    ("one_output", [7, 1], [1], [(1, [])], None),
    ("one_input", [1, 5], [5], [(1, [3])], None),
    ("degree_eq_width", [12, 12, 6], [12, 3], [(1, []), (2, [])], None),
    ("over_255_padded", [300, 30, 20], [2, 4], [(2, [])], 290),
    ("odd_13_26", [13, 26, 13], [4, 2], [(1, [5]), (2, [])], None),
    ("dense_junction", [20, 9], [None], [(1, [])], None),
]
FORMATS = ["dense", "csr", "fixed", "index_free", None]


def _inputs(n_in: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (n, n_in)).astype(np.int8)


def _compile_case(case, fmt, threshold=0.5, seed=0):
    name, widths, degrees, exits, input_len = case
    g = chain_graph(widths, degrees, exits, input_len=input_len, seed=seed, num_classes=4)
    calib = np.random.default_rng(seed + 1).uniform(0, 1, (64, g.input_len))
    if fmt == "index_free" and any(d is None for d in degrees):
        fmt = None  # dense junctions have no closed form
    return compile_graph(g, calib, exit_threshold=threshold, force_format=fmt)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f or "auto")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_c_matches_reference_for_every_format(case, fmt, tmp_path):
    require_tools("gcc")
    q = _compile_case(case, fmt)
    if fmt == "index_free" and None in case[2]:
        fmt = None
    if fmt:
        assert all(layer.packed.format == fmt for layer in q.head)
    out, ref = c_vs_reference(q, _inputs(q.input_len, 300, 7), tmp_path)
    assert_parity(out, ref)
    if q.exits:  # the threshold splits the samples, so both paths are exercised
        assert 0 < ref.exited.sum() < len(ref.exited) or case[0] in ("one_output", "one_input")


def test_multiple_exits_and_saturated_bias_under_clang(tmp_path):
    require_tools("clang")
    q = _compile_case(CASES[4], None, threshold=0.6)
    q.head[0].bias[0] = np.int32(2**31 - 1 - q.head[0].degree * 127 * 128)  # the accumulator bound itself
    x = _inputs(q.input_len, 500, 3)
    median = int(np.median(reference.run(q, x).exit_confidence_q15[0]))
    for ex in q.exits:  # a threshold at the first exit's median confidence: it answers about half
        ex.threshold_q15 = median
    out, ref = c_vs_reference(q, x, tmp_path, compiler="clang")
    assert_parity(out, ref)
    assert ref.evaluated[:, 1].any() and not ref.evaluated[:, 1].all()  # the first exit answers some samples


def test_index_free_c_generator_equals_python_on_many_shapes(tmp_path):
    """The kernel library's walk, with run-time parameters, regenerates exactly the Python pattern."""
    require_tools("gcc")
    exe = compile_c([HERE / "trace_columns.c"], tmp_path / "trace", extra=["-I", str(KERNELS)])
    shapes = [(1, 3, 3), (2, 2, 1), (7, 1, 1), (12, 12, 12), (13, 26, 4), (40, 40, 10), (800, 40, 2)]
    shapes += [(40, 10, 9), (100, 60, 3), (97, 97, 5), (256, 16, 1), (300, 30, 2), (64, 128, 6)]
    params = [structured_params(n_in, n_out, d, seed) for n_in, n_out, d in shapes for seed in (0, 1, 5)]
    lines = "".join(f"{p.n_in} {p.n_out} {p.d_in} {p.p} {(p.s * p.p) % p.n_in}\n" for p in params)
    res = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = res.stdout.strip().split("\n")
    assert len(got) == len(params)
    for p, line in zip(params, got, strict=True):
        np.testing.assert_array_equal(np.array(line.split(), dtype=np.int64), structured_columns(p).ravel(), str(p))


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_strict_compile_of_every_kernel(compiler, tmp_path):
    require_tools(compiler)
    for fmt in ("dense", "csr", "fixed", "index_free"):
        q = _compile_case(CASES[3], fmt)
        lib = write_library(q, tmp_path / fmt)
        for src in sorted(lib.glob("*.c")):
            res = subprocess.run(
                [compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion",
                 "-Wno-sign-conversion", "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert res.returncode == 0, f"{fmt} {src.name}: {res.stderr}"


def test_cortex_m4_compile(tmp_path):
    require_tools("arm-none-eabi-gcc")
    for fmt in (None, "csr", "fixed", "dense"):
        q = _compile_case(CASES[3], fmt)
        lib = write_library(q, tmp_path / str(fmt))
        for src in sorted(lib.glob("*.c")):
            res = subprocess.run(
                ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-O2", "-std=c99", "-Wall", "-Wextra",
                 "-Werror", "-pedantic", "-ffreestanding", "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert res.returncode == 0, f"{fmt} {src.name}: {res.stderr}"


HOSTILE = [
    'x"; system("rm -rf /"); //',
    "a */ int evil; /*",
    "line\nbreak\r\n#define int char",
    "int",
    "while",
    "_Bool",
    "9lives",
    "",
    "??/ trigraph \\",
    "héllo wörld",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_identifiers_and_comments_are_sanitised(name):
    ident = c_identifier(name)
    assert re.fullmatch(r"mcuflow_[A-Za-z0-9_]*", ident)
    assert ident not in C_KEYWORDS and not ident.startswith("_")
    text = c_comment(name)
    for bad in ("*/", "/*", "\n", "\r", "?", "\\"):
        assert bad not in text


def test_hostile_layer_names_cannot_inject_code(tmp_path):
    require_tools("gcc")
    q = _compile_case(CASES[4], None)
    for i, layer in enumerate(q.all_layers()):
        layer.name = HOSTILE[i % len(HOSTILE)]
    for e, ex in enumerate(q.exits):
        ex.name = HOSTILE[(e + 3) % len(HOSTILE)]
    q.name = 'model */ #include "evil.h" /*'
    files = render_library(q)
    kernels = {name: text for name, text in files.items() if name.startswith("kernels/")}
    assert kernels and all(
        text == (KERNELS / name.removeprefix("kernels/")).read_text() for name, text in kernels.items()
    )
    for name, text in files.items():
        if name in kernels:
            continue  # the static library, copied as it is: no model data reaches it
        code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments cannot close early: no "*/" inside
        assert "/*" not in code and "*/" not in code
        assert "rm -rf" not in code
        assert set(re.findall(r"#\s*include\s*(\S+)", code)) <= {
            "<stdint.h>",
            "<stddef.h>",
            "<string.h>",
            '"mcuflow_model.h"',
            '"mcuflow_internal.h"',
            '"kernels/mcuflow_kernels.h"',
        }
        assert "#define int" not in code
        code = re.sub(r"\bmcuflow_\w*", "ID", code)  # sanitised identifiers may spell anything
        assert "evil" not in code and "system" not in code
    out, ref = c_vs_reference(q, _inputs(q.input_len, 100, 1), tmp_path)
    assert_parity(out, ref)


def test_banner_hash_and_no_dynamic_memory():
    q = _compile_case(CASES[3], None)
    files = render_library(q)
    for name, text in files.items():
        assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", text), name
        if name.startswith("kernels/"):
            continue
        assert "Generated by mcuflow" in text and q.model_hash in text, name
        assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", text), name
    weights = files["mcuflow_weights.c"]
    for decl in re.findall(r"^(?:static )?[a-z0-9_ ]+\[\d+\] =", weights, flags=re.M):
        assert "const" in decl, decl
    header = files["mcuflow_model.h"]
    for macro in ("MCUFLOW_INPUT_LEN", "MCUFLOW_INTERMEDIATE_LEN", "MCUFLOW_NUM_CLASSES", "MCUFLOW_NUM_EXITS"):
        assert f"#define {macro}" in header
    assert f'#define MCUFLOW_MODEL_HASH_HEX    "{q.model_hash}"' in header
    assert "int mcuflow_head_run(const int8_t *input, mcuflow_head_result_t *out);" in header
    assert f"MCUFLOW_PEAK_RAM_BYTES    {q.plan.static_ram_bytes}u" in header
    assert q.plan.static_ram_bytes == q.plan.arena_bytes + q.plan.scratch_bytes + len(q.exits)


def test_buffer_plan_is_tight_and_non_overlapping():
    q = _compile_case(CASES[4], None)
    plan = q.plan
    # the padded input (if any) and head activations: ping-pong, never more than the two biggest live ones
    assert plan.arena_bytes <= sum(sorted(plan.sizes.values())[-3:]) + 12
    r = reference.run(q, _inputs(q.input_len, 4, 0))
    assert r.intermediate.shape[1] == q.intermediate_len
