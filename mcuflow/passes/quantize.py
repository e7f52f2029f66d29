"""Post-training int8 quantisation, TFLite style, calibrated on float inputs.

* weights: symmetric int8 in [-127, 127], one scale per tensor or per output row;
* activations: asymmetric int8, min/max calibrated (range always includes 0, so a
  fused ReLU output has zero point -128 exactly);
* the input: asymmetric int8 from the calibration inputs' range like any activation, or the scale and zero
  point the user declares (:class:`InputQuant`); MNIST pixels/255 calibrate to scale 1/255 and zero
  point -128, so ``q = pixel - 128`` exactly;
* biases: int32 ``round(b / (s_in * s_w))`` with ``-in_zp * sum(w)`` folded in;
* requantisation: Q31 multiplier and a right shift with one rounding (see ``mcuflow.ir.quantized``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.ir.graph import Graph, Linear, Pad
from mcuflow.ir.quantized import QExit, QLinear, QModel
from mcuflow.passes.qmath import INT32_MAX, activation_params, quantize_multiplier, weight_scales
from mcuflow.passes.quantize_conv import quantize_node

DEFAULT_EXIT_THRESHOLD = 0.9


@dataclass(frozen=True)
class InputQuant:
    """How real inputs become int8: ``q = clamp(round(x / scale) + zero_point, -128, 127)``."""

    scale: float
    zero_point: int
    source: str  # "calibration" or what the user declared

    @classmethod
    def declared(cls, scale: float | None, zero_point: int | None, value_range: tuple[float, float] | None):
        """The user's input quantisation (--input-scale/--input-zero-point or --input-range), or None."""
        if value_range is not None:
            if scale is not None or zero_point is not None:
                raise ConfigError("give --input-range or --input-scale/--input-zero-point, not both")
            lo, hi = (float(v) for v in value_range)
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
                raise ConfigError(f"--input-range must be two finite numbers LO < HI, got {lo:g},{hi:g}")
            s, zp = activation_params(lo, hi)
            return cls(s, zp, f"declared range [{lo:g}, {hi:g}]")
        if scale is None and zero_point is None:
            return None
        if scale is None or zero_point is None:
            raise ConfigError("--input-scale and --input-zero-point go together")
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"--input-scale must be a positive number, got {scale}")
        if not -128 <= zero_point <= 127:
            raise ConfigError(f"--input-zero-point must be in -128..127, got {zero_point}")
        return cls(float(scale), int(zero_point), "declared scale and zero point")

    @classmethod
    def calibrated(cls, calibration: np.ndarray) -> InputQuant:
        s, zp = activation_params(float(np.min(calibration)), float(np.max(calibration)))
        return cls(s, zp, "calibration range")


def exit_lut(logit_scale: float) -> np.ndarray:
    """Q15 ``exp(-d * scale)`` for a logit gap d of 0..255 (entry 0 is 32768)."""
    d = np.arange(256, dtype=np.float64)
    return np.round(32768.0 * np.exp(-d * logit_scale)).astype(np.uint16)


def threshold_q15(threshold: float) -> int:
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"exit threshold {threshold} must be in (0, 1]")
    return int(min(32767, max(1, round(threshold * 32768))))


def _quantize_linear(
    layer: Linear, in_scale: float, in_zp: int, out_range: tuple[float, float], per_channel: bool
) -> QLinear:
    out_scale, out_zp = activation_params(*out_range)
    if layer.relu:
        out_scale, out_zp = activation_params(0.0, out_range[1])
    s_w = weight_scales(layer.weight, per_channel)
    # All-zero rows quantise to zeros at any scale; pick one that gives their bias 20 bits of resolution
    # (the bias is quantised in steps of in_scale * s_w).
    zero = ~np.any(layer.weight != 0, axis=1) if per_channel else np.full(layer.n_out, not np.any(layer.weight))
    if zero.any():
        b = np.abs(layer.bias) if per_channel else np.full(layer.n_out, np.abs(layer.bias).max(initial=0.0))
        s_w = np.where(zero, np.maximum(b, 1e-12) / (in_scale * 2**20), s_w)
    wq = np.clip(np.round(layer.weight / s_w[:, None]), -127, 127).astype(np.int8)
    bq = np.round(layer.bias / (in_scale * s_w))
    bq = np.clip(bq, -INT32_MAX, INT32_MAX)
    folded = bq.astype(np.int64) - in_zp * wq.astype(np.int64).sum(axis=1)
    # Bound |acc| statically so the int32 accumulator can never overflow on any input.
    room = INT32_MAX - layer.degree * 127 * 128
    if room <= 0:
        raise ConfigError(f"{layer.name}: in-degree {layer.degree} is too large for an int32 accumulator")
    saturated = int(np.count_nonzero(np.abs(folded) > room))
    folded = np.clip(folded, -room, room).astype(np.int32)
    mults, shifts = zip(*(quantize_multiplier(in_scale * s / out_scale) for s in s_w), strict=True)
    act_min = out_zp if layer.relu else -128
    return QLinear(
        name=layer.name,
        n_in=layer.n_in,
        n_out=layer.n_out,
        weight=wq,
        columns=layer.columns.astype(np.int64),
        bias=folded,
        mult=np.array(mults, dtype=np.int32),
        rshift=np.array(shifts, dtype=np.uint8),
        in_scale=float(in_scale),
        in_zp=int(in_zp),
        w_scale=s_w.astype(np.float64),
        out_scale=float(out_scale),
        out_zp=int(out_zp),
        act_min=int(max(-128, act_min)),
        act_max=127,
        relu=layer.relu,
        pattern=layer.pattern,
        params=layer.params,
        saturated_biases=saturated,
    )


def quantize(
    graph: Graph,
    calibration: np.ndarray,
    per_channel: bool = True,
    exit_threshold: float = DEFAULT_EXIT_THRESHOLD,
    input_quant: InputQuant | None = None,
) -> QModel:
    """Quantise a fused graph (``passes.fuse_relu``) with float inputs ``calibration`` (N, input_len).

    The input's scale and zero point come from ``input_quant`` when the user declared them, else from the
    calibration inputs' range."""
    calibration = np.asarray(calibration, dtype=np.float64)
    if calibration.ndim != 2 or calibration.shape[1] != graph.input_len or len(calibration) == 0:
        raise ConfigError(
            f"calibration data must be (N > 0, {graph.input_len}) inputs, got shape {tuple(calibration.shape)}"
        )
    t_q15 = threshold_q15(exit_threshold)
    _, _, acts = graph.forward(calibration)
    ranges = {name: (float(a.min()), float(a.max())) for name, a in acts.items()}

    padded_len = graph.input_len
    nodes = list(graph.head)
    if nodes and isinstance(nodes[0], Pad):
        padded_len = nodes.pop(0).n_out
    offset = len(graph.head) - len(nodes)
    # (scale, zp) of the value after each head position (position 0: the (padded) input)
    inq = input_quant or InputQuant.calibrated(calibration)
    qparams = [(inq.scale, inq.zero_point)]
    head = []
    for node in nodes:
        ql = quantize_node(node, *qparams[-1], ranges[node.name], per_channel)  # conv, pool
        if ql is None and not isinstance(node, Linear):
            raise ConfigError(f"{node.name} ({node.kind}) cannot be quantised on its own; run fuse_relu first")
        ql = ql or _quantize_linear(node, *qparams[-1], ranges[node.name], per_channel)
        head.append(ql)
        qparams.append((ql.out_scale, ql.out_zp))
    exits = []
    for branch in graph.exits:
        at = max(0, branch.at - offset)
        s, zp = qparams[at]
        layers = []
        for node in branch.nodes:
            ql = quantize_node(node, s, zp, ranges[node.name], per_channel)  # conv, pool
            if ql is None and not isinstance(node, Linear):
                raise ConfigError(f"{node.name} ({node.kind}) cannot be quantised on its own; run fuse_relu first")
            ql = ql or _quantize_linear(node, s, zp, ranges[node.name], per_channel)
            layers.append(ql)
            s, zp = ql.out_scale, ql.out_zp
        width = layers[-1].n_out if layers else (head[at - 1].n_out if at else padded_len)
        if width != graph.num_classes:
            raise ConfigError(f"{branch.name} gives {width} logits, expected {graph.num_classes}")
        # A final exit (the whole model on the device) answers every sample that reaches it: threshold 0.
        exits.append(QExit(branch.name, at, layers, exit_lut(s), 0 if branch.final else t_q15))
    if len(exits) > 255:
        raise ConfigError(f"{len(exits)} exits: at most 255 are supported")
    return QModel(
        name=graph.name,
        model_hash=graph.model_hash,
        input_len=graph.input_len,
        padded_len=padded_len,
        input_scale=inq.scale,
        input_zp=inq.zero_point,
        head=head,
        exits=exits,
        num_classes=graph.num_classes,
        exit_threshold=float(exit_threshold),
        per_channel=per_channel,
        calibration_samples=len(calibration),
        source=graph.source,
        input_shape=graph.input_shape,
    )
