"""The numpy reference's integer exit decision and its semantics for several exits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mcuflow import reference
from mcuflow.export import compile_graph
from mcuflow.ir.quantized import QExit
from mcuflow.passes.quantize import exit_lut

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import chain_graph  # noqa: E402


def _exit(scale=0.1, threshold=29491):
    return QExit("e", 1, [], exit_lut(scale), threshold)


def test_ties_go_to_the_lowest_index():
    logits = np.array([[3, 7, 7, 1], [5, 5, 5, 5], [-128, -128, 127, 127]], np.int8)
    label, conf, _ = reference.exit_decision(_exit(), logits)
    np.testing.assert_array_equal(label, [1, 0, 2])
    assert conf[1] == round(2**30 / (4 * 32768))  # four equal logits: 1/4


def test_confidence_formula_exactly():
    ex = _exit(scale=0.05)
    logits = np.array([[10, 0, -20]], np.int8)
    lut = ex.lut.astype(np.int64)
    total = lut[0] + lut[10] + lut[30]
    _, conf, ok = reference.exit_decision(ex, logits)
    assert conf[0] == min(32767, (2**30 + total // 2) // total)
    assert ok[0] == (conf[0] >= ex.threshold_q15)
    # a huge gap saturates at 32767, so threshold 1.0 (32767) can still be reached
    _, conf, ok = reference.exit_decision(_exit(scale=1.0, threshold=32767), np.array([[127, -128]], np.int8))
    assert conf[0] == 32767 and ok[0]


@settings(max_examples=200, deadline=None)
@given(arrays(np.int8, (5, 10)), st.floats(0.005, 0.5))
def test_integer_confidence_tracks_the_float_softmax(logits, scale):
    _, conf, _ = reference.exit_decision(_exit(scale), logits)
    z = logits.astype(np.float64) * scale
    p = np.exp(z - z.max(1, keepdims=True))
    p = p.max(1) / p.sum(1)
    # LUT rounding: each entry is within 0.5/32768 of its exact value
    assert np.all(np.abs(conf / 32768.0 - np.minimum(p, 32767 / 32768)) < 2e-3)


def test_exits_are_evaluated_in_order_and_the_first_confident_one_answers():
    g = chain_graph([16, 8, 8], [2, 2], exits=[(2, []), (1, [])], seed=4, num_classes=3)
    rng = np.random.default_rng(0)
    q = compile_graph(g, rng.uniform(0, 1, (64, 16)), exit_threshold=0.55)
    assert [e.at for e in q.exits] == [2, 1]
    x = rng.integers(-128, 128, (400, 16)).astype(np.int8)
    median = int(np.median(reference.run(q, x).exit_confidence_q15[1]))
    for ex in q.exits:  # the earlier exit answers about half; the later one some of the rest
        ex.threshold_q15 = median
    r = reference.run(q, x)
    # exit 1 reads an earlier layer, so the device evaluates it first
    assert r.evaluated[:, 1].all()
    first = r.exit_confidence_q15[1] >= q.exits[1].threshold_q15
    np.testing.assert_array_equal(r.evaluated[:, 0], ~first)
    second = ~first & (r.exit_confidence_q15[0] >= q.exits[0].threshold_q15)
    np.testing.assert_array_equal(r.exited.astype(bool), first | second)
    np.testing.assert_array_equal(r.exit_index[first], 1)
    np.testing.assert_array_equal(r.exit_index[second], 0)
    np.testing.assert_array_equal(r.label[first], r.exit_label[1][first])
    assert first.any() and second.any() and (~(first | second)).any()
