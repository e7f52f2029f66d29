"""The numpy integer model of exactly what the generated C does: the contract C must match bit for bit.

Use :func:`run` with a :class:`~mcuflow.ir.quantized.QModel` (from :func:`mcuflow.export.compile_graph`,
or :func:`mcuflow.manifest.load_model` on an export directory) and a batch of int8 inputs ``(N, input_len)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mcuflow import exitrule
from mcuflow.errors import ConfigError
from mcuflow.ir.quantized import QExit, QLinear, QModel
from mcuflow.reference.conv import run_conv_layer

if TYPE_CHECKING:
    from mcuflow.reference.offload import LinkResult


@dataclass
class ReferenceResult:
    """Per sample (arrays of length N), as the device reports it."""

    exited: np.ndarray  # uint8
    exit_index: np.ndarray  # uint8 (0 where not exited)
    label: np.ndarray  # uint8 (argmax of the answering exit; 0 where not exited)
    confidence_q15: np.ndarray  # uint16 (0 where not exited)
    intermediate: np.ndarray  # int8 (N, intermediate_len): the head output, computed for every sample
    exit_logits: list[np.ndarray]  # per exit, int8 (N, num_classes), computed for every sample
    exit_confidence_q15: list[np.ndarray]  # per exit, uint16 (N,)
    exit_label: list[np.ndarray]  # per exit, uint8 (N,)
    evaluated: np.ndarray  # bool (N, num_exits): exits the device actually ran (in order, up to the answer)
    link: LinkResult | None = None  # the intermediate as sent over the link (set by link_offload's callers)


def requantize(acc: np.ndarray, mult: np.ndarray, rshift: np.ndarray) -> np.ndarray:
    """``(acc * mult + 2**(rshift-1)) >> rshift`` in int64, shifts arithmetic (as in C on gcc/clang/arm)."""
    acc = acc.astype(np.int64)
    mult = mult.astype(np.int64)
    rshift = rshift.astype(np.int64)
    return (acc * mult + (np.int64(1) << (rshift - 1))) >> rshift


def linear(layer: QLinear, x: np.ndarray) -> np.ndarray:
    """One quantised layer on int8 ``x`` (N, >= n_in) -> int8 (N, n_out); conv and pool layers too."""
    y = run_conv_layer(layer, x)
    if y is not None:
        return y
    x = x.astype(np.int64)
    w = layer.weight.astype(np.int64)
    if (
        layer.degree == layer.n_in
        and np.array_equal(layer.columns[0], np.arange(layer.n_in))
        and (layer.columns == layer.columns[0]).all()
    ):
        acc = x[:, : layer.n_in] @ w.T
    else:
        acc = np.einsum("brk,rk->br", x[:, layer.columns], w)
    acc = acc + layer.bias.astype(np.int64)
    if np.abs(acc).max(initial=0) > 2**31 - 1:  # cannot happen: quantize bounds the bias
        raise AssertionError(f"{layer.name}: int32 accumulator overflow")
    y = requantize(acc, layer.mult, layer.rshift) + layer.out_zp
    return np.clip(y, layer.act_min, layer.act_max).astype(np.int8)


def exit_decision(ex: QExit, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, confidence_q15, exits) for int8 logits (N, C): the device's integer max-softmax test."""
    l64 = logits.astype(np.int64)
    label = np.argmax(l64, axis=1)  # first maximum: lowest index wins ties, as in C
    gap = l64.max(axis=1, keepdims=True) - l64
    total = ex.lut.astype(np.int64)[gap].sum(axis=1)
    conf = np.minimum(32767, (2**30 + (total >> 1)) // total)
    return label.astype(np.uint8), conf.astype(np.uint16), exitrule.reaches(conf, ex.threshold_q15)


def run(model: QModel, inputs: np.ndarray) -> ReferenceResult:
    x = np.asarray(inputs)
    if x.ndim != 2 or x.shape[1] != model.input_len:
        raise ConfigError(f"inputs must be (N, {model.input_len}) int8, got {x.shape}")
    if x.dtype != np.int8:
        raise ConfigError(f"inputs must be int8 (quantised), got {x.dtype}")
    n = len(x)
    h = np.full((n, model.padded_len), model.input_zp, dtype=np.int8)
    h[:, : model.input_len] = x
    acts = [h]
    for layer in model.head:
        acts.append(linear(layer, acts[-1]))
    # Every exit runs on every sample here (the device stops at the answering one: ``evaluated``);
    # which exit answers is the shared rule, each exit with its own Q15 threshold.
    logits_all, conf_all, label_all = [], [], []
    for ex in model.exits:
        z = acts[ex.at]
        for layer in ex.layers:
            z = linear(layer, z)
        lab, c, _ = exit_decision(ex, z)
        logits_all.append(z)
        label_all.append(lab)
        conf_all.append(c)
    decision = exitrule.decide(
        conf_all, [ex.threshold_q15 for ex in model.exits], attach=[ex.at for ex in model.exits], samples=n
    )
    exited = decision.exited
    exit_index = np.where(exited, decision.exit_index, 0).astype(np.uint8)
    label = decision.answer(label_all, np.zeros(n, dtype=np.uint8))
    conf = decision.answer(conf_all, np.zeros(n, dtype=np.uint16))
    evaluated = decision.evaluated
    return ReferenceResult(
        exited.astype(np.uint8), exit_index, label, conf, acts[-1], logits_all, conf_all, label_all, evaluated
    )
