"""Convolutional heads through the compiler: quantisation, the closed-form channel plan, the buffer plan
(in-place pooling), and the generated C bit-exact with the numpy reference (gcc and clang, the reference
and the emulated DSP variant), on hand-built graphs with random weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from mcuflow import reference
from mcuflow.errors import ConfigError
from mcuflow.export import compile_graph
from mcuflow.ir.qconv import closed_form_channels, row_pieces

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import HERE, assert_parity, compile_c, run_harness, write_library  # noqa: E402
from c.conv_graphs import conv, linear, pool, small_cnn  # noqa: E402

# (id, small_cnn keyword arguments)
CASES = [
    ("dense", {"d_out": None}),
    ("sparse_c4_c8_din2", {"d_out": 4}),
    ("sparse_straddle_c5_c10_din2", {"c1": 5, "c2": 10, "d_out": 4}),
    ("sparse_c6_c4_din3_stride2", {"c1": 6, "c2": 4, "d_out": 2, "stride": 2, "exit_pool": "max"}),
    ("sparse_c5_c5_din1", {"c1": 5, "c2": 5, "d_out": 1, "side": 9}),
]


def _compiled(kw, seed=0, threshold=0.5):
    g = small_cnn(seed=seed, **kw)
    calib = np.random.default_rng(seed + 1).uniform(0, 1, (64, g.input_len))
    return g, compile_graph(g, calib, exit_threshold=threshold)


def _inputs(n_in, n, seed):
    return np.random.default_rng(seed).integers(-128, 128, (n, n_in)).astype(np.int8)


def _c_run(q, x, tmp, compiler="gcc", extra=()):
    lib = write_library(q, tmp / "lib")
    exe = compile_c(sorted(lib.glob("*.c")) + [HERE / "harness.c"], tmp / f"h_{compiler}", compiler,
                    ["-I", str(lib), *extra])  # fmt: skip
    return run_harness(exe, x, len(q.exits), q.num_classes, q.intermediate_len, tmp)


@pytest.mark.parametrize("variant", [(), ("-DMCUFLOW_EMULATE_DSP=1",)], ids=["reference", "dsp-emulated"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_conv_c_matches_reference(case, variant, tmp_path):
    require_tools("gcc")
    _, q = _compiled(case[1])
    x = _inputs(q.input_len, 120, 3)
    # the first exit's threshold at its median confidence: half the samples answer there
    q.exits[0].threshold_q15 = int(np.median(reference.run(q, x).exit_confidence_q15[0]))
    ref = reference.run(q, x)
    assert 0 < ref.exited.sum() < len(x)  # both paths: answered after the first conv block, and offloaded
    assert_parity(_c_run(q, x, tmp_path, "gcc", variant), ref)


def test_conv_clang_strict(tmp_path):
    require_tools("clang")
    _, q = _compiled(CASES[2][1])
    x = _inputs(q.input_len, 60, 4)
    assert_parity(_c_run(q, x, tmp_path, "clang", ("-Wshadow", "-Wconversion", "-Wno-sign-conversion")),
                  reference.run(q, x))  # fmt: skip


def test_int8_follows_float():
    g, q = _compiled(CASES[1][1])
    calib = np.random.default_rng(1).uniform(0, 1, (64, g.input_len))
    _, head, _ = g.forward(calib)
    r = reference.run(q, reference.quantize_input(calib, q.input_scale, q.input_zp))
    got = (r.intermediate.astype(np.float64) - q.intermediate_zp) * q.intermediate_scale
    assert np.abs(got - head).max() < 0.1 * np.abs(head).max()


@pytest.mark.parametrize("c_in,c_out,d_out", [(5, 10, 4), (6, 4, 2), (8, 16, 4), (7, 7, 3), (4, 4, 4)])
def test_row_pieces_walk_the_closed_form(c_in, c_out, d_out):
    from mcuflow.sparsity.patterns import structured_columns, structured_params

    params = structured_params(c_in, c_out, d_out, 0)
    s = params.s % c_in
    ch = closed_form_channels(c_in, c_out, params.d_in, params.p, s)
    np.testing.assert_array_equal(ch, structured_columns(params))
    for o, pieces in enumerate(row_pieces(c_in, c_out, params.d_in, s)):
        us = [(u0 + i) % c_in for u0, n in pieces for i in range(n)]
        np.testing.assert_array_equal((np.array(us) * params.p) % c_in, ch[o])
        assert all(u0 + n <= c_in + params.d_in - 1 for u0, n in pieces)


def test_in_place_pool_and_real_peak():
    _, q = _compiled(CASES[0][1])
    plan = q.plan
    assert plan.offsets["h1"] == plan.offsets["h0"]  # the max pool wrote over the conv output
    assert plan.arena_bytes == max(plan.offsets[n] + plan.sizes[n] for n in plan.offsets if n in plan.sizes)


def test_explicit_channels_are_refused_by_name():
    g = small_cnn(d_out=4)
    g.head[3].channels = g.head[3].channels[::-1].copy()
    g.head[3].pattern = "explicit"
    g.head[3].params = None
    with pytest.raises(ConfigError, match="conv2.*not a closed form"):
        compile_graph(g, np.random.default_rng(1).uniform(0, 1, (8, g.input_len)))


def test_depthwise_is_a_closed_form():
    from mcuflow.ir.graph import Shape

    rng = np.random.default_rng(0)
    node = conv("dw", Shape(6, 6, 3), 3, 3, rng, depthwise=True)
    from mcuflow.passes.quantize_conv import closed_form

    assert closed_form(node) == (1, 0)


def test_hello_carries_shapes_and_they_must_hold_the_lengths():
    from mcuflow.link import messages as m
    from mcuflow.link.errors import ProtocolError

    caps = m.CAP_INPUT_QUANT | m.CAP_SHAPE
    h = m.Hello((0, 1), caps, 784, 250, 10, 1, 1024, 0, b"\0" * 32, "b", 0, 1 / 255, -128, None, None,
                input_shape=(28, 28, 1), intermediate_shape=(5, 5, 10))  # fmt: skip
    back = m.Hello.parse(h.pack())
    assert back.input_shape == (28, 28, 1) and back.intermediate_shape == (5, 5, 10)
    bad = m.Hello((0, 1), caps, 784, 250, 10, 1, 1024, 0, b"\0" * 32, "b", 0, 1 / 255, -128, None, None,
                  input_shape=(28, 28, 1), intermediate_shape=(5, 5, 9))  # fmt: skip
    with pytest.raises(ProtocolError, match="do not hold"):
        m.Hello.parse(bad.pack())


def test_header_announces_feature_map_shapes():
    from mcuflow.codegen import render_library

    _, q = _compiled(CASES[1][1])
    h = render_library(q)["mcuflow_model.h"]
    assert "#define MCUFLOW_INPUT_SHAPE_H         12" in h
    assert f"#define MCUFLOW_INTERMEDIATE_SHAPE_C  {q.intermediate_shape.c}" in h


def test_hwc_to_nchw():
    from mcuflow.tail import hwc_to_nchw

    x = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)  # h, w, c
    np.testing.assert_array_equal(hwc_to_nchw(x.reshape(1, -1), (2, 3, 4)), x.transpose(0, 3, 1, 2).reshape(1, -1))


def test_plan_never_overlaps_a_step_s_input_and_output_unless_in_place():
    """Every step's output either is its input (an in-place pool) or shares no byte with it, and no two
    tensors alive at once overlap (a pool that could not go in place was once put over its input)."""
    from mcuflow.ir.graph import ExitBranch, Graph, Shape

    rng = np.random.default_rng(2)
    s0 = Shape(12, 12, 1)
    c1 = conv("c1", s0, 8, 5, rng, relu=True)  # 8x8x8 = 512
    p1 = pool("p1", c1.out_shape, 2)  # 4x4x8 = 128
    c2 = conv("c2", p1.out_shape, 16, 3, rng, pad=1, d_out=4, relu=True)  # 4x4x16 = 256: above the pool, below c1
    p2 = pool("p2", c2.out_shape, 2)
    g = Graph("overlap", s0.size, [c1, p1, c2, p2], [ExitBranch("x", 4, [linear("x.fc", p2.n_out, 4, rng)])], 4,
              "cd" * 32, input_shape=s0)  # fmt: skip
    q = compile_graph(g, np.random.default_rng(3).uniform(0, 1, (16, g.input_len)))
    plan = q.plan
    for s in plan.steps:
        if s.src_offset is None or s.kind == "exit" or s.src == s.dst:
            continue
        a = (s.src_offset, s.src_offset + plan.sizes[s.src])
        b = (s.dst_offset, s.dst_offset + plan.sizes[s.dst])
        assert a[0] == b[0] and s.kind == "pool" or a[1] <= b[0] or b[1] <= a[0], (s.kind, s.src, s.dst, a, b)
    x = _inputs(q.input_len, 40, 1)
    ref = reference.run(q, x)
    assert ref.intermediate.shape == (40, q.intermediate_len)
