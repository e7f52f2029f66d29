"""What quantisation costs: the int8 model's answers against the float model's on held-out inputs.

Parity with the reference says the C computes what the int8 model computes; this says how far the int8
model is from what the user trained, so a loss from quantisation (a poor input scale, say) is reported
beside parity instead of hiding behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuflow import exitrule
from mcuflow.ir.graph import Graph
from mcuflow.ir.quantized import QModel
from mcuflow.reference.float_tail import tail_forward
from mcuflow.reference.int8 import run
from mcuflow.reference.quantization import dequantize, quantize_input

AGREEMENT_BOUND = 0.98  # below this export warns: more than 2 in 100 answers change with int8
OFFLOADED = -1  # the answer of a sample sent to the host when there is no tail to finish it


@dataclass(frozen=True)
class QuantCheck:
    samples: int
    held_out: bool  # False: too few inputs to hold some out, checked on the calibration inputs
    agreement: float  # fraction of samples whose int8 answer equals the float answer
    float_accuracy: float | None  # with labels
    int8_accuracy: float | None
    bound: float = AGREEMENT_BOUND

    @property
    def passed(self) -> bool:
        return self.agreement >= self.bound

    def describe(self) -> str:
        where = "held-out" if self.held_out else "calibration (none held out)"
        acc = ""
        if self.float_accuracy is not None and self.int8_accuracy is not None:
            acc = f"; accuracy float {100 * self.float_accuracy:.2f}%, int8 {100 * self.int8_accuracy:.2f}%"
        return f"int8 agrees with float on {100 * self.agreement:.2f}% of {self.samples} {where} samples{acc}"


def _softmax_confidence(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).max(axis=1)


def float_answers(graph: Graph, x: np.ndarray, thresholds: list[float], tail: dict | None) -> np.ndarray:
    """The float model's answer per sample: the answering exit's class, else the tail's (or OFFLOADED).
    ``thresholds``: each exit's, as the device has them (a whole model's final exit: 0)."""
    exit_logits, head_out, _ = graph.forward(x)
    decision = exitrule.decide(
        [_softmax_confidence(z) for z in exit_logits],
        thresholds,
        attach=[ex.at for ex in graph.exits],
        samples=len(x),
    )
    rest = np.full(len(x), OFFLOADED) if tail is None else tail_forward(tail, head_out).argmax(axis=1)
    return decision.answer([z.argmax(axis=1) for z in exit_logits], rest)


def int8_answers(q: QModel, x: np.ndarray, tail: dict | None) -> np.ndarray:
    ref = run(q, quantize_input(x, q.input_scale, q.input_zp))
    if tail is None:
        rest = np.full(len(x), OFFLOADED)
    else:
        rest = tail_forward(tail, dequantize(ref.intermediate, q.intermediate_scale, q.intermediate_zp)).argmax(axis=1)
    return np.where(ref.exited.astype(bool), ref.label.astype(np.int64), rest)


def check_quantization(
    graph: Graph,
    q: QModel,
    x: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    tail: dict | None = None,
    held_out: bool = True,
) -> QuantCheck:
    """Float vs int8 answers on float inputs ``x`` (N, input_len); ``tail`` is ``tail.npz``'s arrays."""
    x = np.asarray(x, dtype=np.float64)
    want = float_answers(graph, x, [ex.threshold_q15 / 32768 for ex in q.exits], tail)
    got = int8_answers(q, x, tail)
    acc_f = acc_q = None
    if labels is not None:
        y = np.asarray(labels).reshape(-1)[: len(x)].astype(np.int64)
        acc_f, acc_q = float(np.mean(want == y)), float(np.mean(got == y))
    return QuantCheck(len(x), held_out, float(np.mean(want == got)), acc_f, acc_q)
