"""The early-exit rule (mcuflow.exitrule), and the places that must agree with it (tier 1)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mcuflow import exitrule, reference
from mcuflow.errors import ConfigError
from mcuflow.export import compile_graph
from mcuflow.passes.quantize import threshold_q15

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import chain_graph  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_exits_are_tried_by_attach_position_then_index():
    # exit 0 reads head layer 2, exits 1 and 2 read layer 1: the device tries 1, 2, then 0
    conf = [np.array([0.9, 0.9, 0.9, 0.1]), np.array([0.9, 0.1, 0.1, 0.1]), np.array([0.9, 0.9, 0.1, 0.1])]
    d = exitrule.decide(conf, 0.5, attach=[2, 1, 1])
    assert exitrule.device_order([2, 1, 1]) == [1, 2, 0]
    np.testing.assert_array_equal(d.exit_index, [1, 2, 0, exitrule.NO_EXIT])
    np.testing.assert_array_equal(d.exited, [True, True, True, False])
    # the device stops at the answer: exit 0 runs only for samples exits 1 and 2 let through
    np.testing.assert_array_equal(d.evaluated, [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 1]])
    # listed order when no attach positions are given: the first listed passing exit answers
    np.testing.assert_array_equal(exitrule.decide(conf, 0.5).exit_index, [0, 0, 0, exitrule.NO_EXIT])


def test_a_confidence_exactly_at_the_threshold_answers():
    q15 = np.array([29490, 29491, 29492], dtype=np.uint16)
    np.testing.assert_array_equal(exitrule.decide([q15], 29491).exited, [False, True, True])
    np.testing.assert_array_equal(exitrule.reaches(q15, 29491), [False, True, True])
    # float32 probabilities compare against the threshold rounded to float32, as torch does
    at = np.float32(0.9)
    below = np.nextafter(at, np.float32(0))
    probs = np.array([below, at], dtype=np.float32)
    np.testing.assert_array_equal(exitrule.decide([probs], 0.9).exited, [False, True])
    np.testing.assert_array_equal(exitrule.decide([probs], 0.9).exited, (torch.from_numpy(probs) >= 0.9).numpy())


def test_each_exit_uses_its_own_threshold():
    conf = [np.array([0.8, 0.8, 0.3]), np.array([0.95, 0.5, 0.95])]
    same = exitrule.decide(conf, 0.9)
    np.testing.assert_array_equal(same.exit_index, [1, exitrule.NO_EXIT, 1])
    own = exitrule.decide(conf, [0.7, 0.99])
    np.testing.assert_array_equal(own.exit_index, [0, 0, exitrule.NO_EXIT])
    own = exitrule.decide(conf, np.array([0.85, 0.5]))  # a numpy array of thresholds works too
    np.testing.assert_array_equal(own.exit_index, [1, 1, 1])
    with pytest.raises(ConfigError, match="2 exit thresholds for 3 exits"):
        exitrule.decide([*conf, conf[0]], [0.5, 0.5])


def test_without_exits_every_sample_goes_to_the_tail():
    d = exitrule.decide([], 0.9, samples=3)
    assert d.evaluated.shape == (3, 0) and not d.exited.any()
    np.testing.assert_array_equal(d.exit_index, [exitrule.NO_EXIT] * 3)
    np.testing.assert_array_equal(d.answer([], np.array([4, 5, 6])), [4, 5, 6])
    with pytest.raises(ConfigError, match="samples="):
        exitrule.decide([], 0.9)


def test_answer_takes_the_answering_exits_value_else_the_tails():
    d = exitrule.decide([np.array([1, 0, 0]), np.array([1, 1, 0])], 1)
    tail = np.array([7, 8, 9], dtype=np.int64)
    out = d.answer([np.array([1, 1, 1], np.uint8), np.array([2, 2, 2], np.uint8)], tail)
    np.testing.assert_array_equal(out, [1, 2, 9])
    assert out.dtype == np.int64 and list(tail) == [7, 8, 9]


def test_inputs_that_do_not_fit_are_refused():
    with pytest.raises(ConfigError, match="number of samples"):
        exitrule.decide([np.zeros(3), np.zeros(4)], 0.5)
    with pytest.raises(ConfigError, match="attach positions"):
        exitrule.decide([np.zeros(3)], 0.5, attach=[1, 2])
    with pytest.raises(ConfigError, match="one value per sample"):
        exitrule.decide([np.zeros((3, 2))], 0.5)
    with pytest.raises(ConfigError, match="must be a number"):
        exitrule.decide([np.zeros(3)], "0.5")


def _two_exit_model():
    """Exits attached out of index order (exit 0 after layer 2, exit 1 after layer 1), each with its own threshold."""
    g = chain_graph([16, 8, 8], [2, 2], exits=[(2, []), (1, [])], seed=4, num_classes=3)
    rng = np.random.default_rng(0)
    q = compile_graph(g, rng.uniform(0, 1, (64, 16)), exit_threshold=0.55)
    x = rng.integers(-128, 128, (400, 16)).astype(np.int8)
    conf = reference.run(q, x).exit_confidence_q15
    q.exits[0].threshold_q15 = int(np.percentile(conf[0], 40))
    q.exits[1].threshold_q15 = int(np.percentile(conf[1], 60))
    return q, x


def test_the_reference_and_the_hil_tradeoff_decide_by_the_rule():
    from mcuflow.hil import TRADEOFF_THRESHOLDS, threshold_tradeoff

    q, x = _two_exit_model()
    assert q.exits[0].threshold_q15 != q.exits[1].threshold_q15
    ref = reference.run(q, x)
    attach = [ex.at for ex in q.exits]
    d = exitrule.decide(ref.exit_confidence_q15, [ex.threshold_q15 for ex in q.exits], attach=attach)
    np.testing.assert_array_equal(ref.exited.astype(bool), d.exited)
    np.testing.assert_array_equal(ref.exit_index, np.where(d.exited, d.exit_index, 0))
    np.testing.assert_array_equal(ref.label, d.answer(ref.exit_label, np.zeros(len(x), np.uint8)))
    np.testing.assert_array_equal(ref.evaluated, d.evaluated)
    assert set(np.unique(d.exit_index)) == {exitrule.NO_EXIT, 0, 1}  # both exits answer some, the tail the rest

    rng = np.random.default_rng(1)
    tail_pred = rng.integers(0, 3, len(x))
    labels = rng.integers(0, 3, len(x))
    rows = threshold_tradeoff(ref, tail_pred, labels, 18.0, 60.0, attach=attach)
    assert [r.threshold for r in rows] == list(TRADEOFF_THRESHOLDS)
    for row in rows:
        tq = threshold_q15(row.threshold)
        d = exitrule.decide(ref.exit_confidence_q15, tq, attach=attach)
        assert row.exit_rate == d.exited.mean()
        assert row.accuracy == np.mean(d.answer(ref.exit_label, tail_pred) == labels)
        # the same threshold given to every exit of the model: the reference exits exactly those samples
        for ex in q.exits:
            ex.threshold_q15 = tq
        assert reference.run(q, x).exited.mean() == row.exit_rate


def _out_of_order_splitnet():
    from mcuflow.nn.split import SplitNet

    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16))
    exits = [(3, torch.nn.Linear(16, 10)), (1, torch.nn.Linear(16, 10))]  # exit 1 reads the earlier layer
    with torch.no_grad():
        exits[0][1].weight.mul_(20)  # a confident exit 0, so both exits pass on some samples
    return SplitNet(head, exits, torch.nn.Sequential(torch.nn.Linear(16, 10))).eval()


def test_the_float_model_and_the_exit_analysis_follow_the_device_order():
    from mcuflow.hil import float_predictions
    from mcuflow.nn.exits_analysis import evaluate_threshold

    model = _out_of_order_splitnet()
    images = np.random.default_rng(2).integers(0, 256, (300, 28, 28)).astype(np.uint8)
    x = torch.from_numpy(images.reshape(300, -1).astype(np.float32) / 255.0)
    with torch.no_grad():
        exit_logits, final = model(x)
    probs = [torch.softmax(lg, 1).max(1) for lg in exit_logits]
    t = float(np.median(probs[1].values.numpy()))
    d = exitrule.decide([p.values.numpy() for p in probs], t, attach=model.exit_points)
    assert (d.exit_index == 0).any() and (d.exit_index == 1).any()
    both = exitrule.reaches(probs[0].values.numpy(), t) & exitrule.reaches(probs[1].values.numpy(), t)
    assert (both & (probs[0].indices != probs[1].indices).numpy()).any()  # exit-index order would differ here
    expected = d.answer([p.indices.numpy() for p in probs], final.argmax(1).numpy())

    end_to_end, final_pred = float_predictions(model, images, t)
    np.testing.assert_array_equal(end_to_end, expected)
    np.testing.assert_array_equal(final_pred, final.argmax(1).numpy())

    labels = torch.from_numpy(expected)  # every answer right: end-to-end accuracy 1 iff the rule matches
    r = evaluate_threshold(exit_logits, final, labels, t, "max_prob", exit_points=model.exit_points)
    assert r["end_to_end_accuracy"] == 1.0
    assert r["per_exit_fraction"] == [float(np.mean(d.exit_index == e)) for e in (0, 1)]


def test_the_rule_imports_nothing_above_it():
    tree = ast.parse((ROOT / "mcuflow" / "exitrule.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m.split(".")[0] in ("mcuflow", "torch")} == {"mcuflow.errors"}
    code = "import sys, mcuflow.exitrule; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
