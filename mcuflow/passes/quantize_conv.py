"""Quantise convolutional nodes (``Conv2d``, ``Pool2d``) TFLite style, as ``passes.quantize`` does a
``Linear``: per-channel symmetric int8 weights, the input zero point folded into the int32 bias (the
kernel pads with that zero point, so the fold is exact at the borders), a Q31 multiplier per output
channel. Pooling keeps its input's scale and zero point (see ``mcuflow.ir.qconv``).

Every channel pattern must be the closed form the kernel regenerates (dense, depthwise with one output per
input channel, structured, or an explicit one that happens to equal a closed form); anything else is
refused by name."""

from __future__ import annotations

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.ir.graph import Conv2d, Pool2d
from mcuflow.ir.qconv import QConv2d, QPool2d, closed_form_channels
from mcuflow.passes.qmath import INT32_MAX, activation_params, quantize_multiplier, weight_scales


def closed_form(node: Conv2d) -> tuple[int, int]:
    """``(p, s)`` of the node's channel pattern, or a ConfigError naming the node."""
    c_in, c_out, d_in = node.in_shape.c, node.out_shape.c, node.degree
    candidates = [(1, 0)]
    if node.params is not None:
        candidates.insert(0, (int(node.params.p), int(node.params.s) % c_in if c_in else 0))
    for p, s in candidates:
        if np.array_equal(closed_form_channels(c_in, c_out, d_in, p, s), node.channels):
            return p, s
    raise ConfigError(
        f"{node.name} ({node.pattern} conv, {c_in}->{c_out} channels, in-degree {d_in}): its channel pattern is "
        "not a closed form the device can regenerate (dense, depthwise with one output per input channel, or "
        "structured); stored channel indices are not supported"
    )


def quantize_conv(
    node: Conv2d, in_scale: float, in_zp: int, out_range: tuple[float, float], per_channel: bool
) -> QConv2d:
    if node.act_max is not None:
        raise ConfigError(f"{node.name}: ReLU6 (act_max) on a convolution is not supported on the device yet")
    p, s = closed_form(node)
    out_scale, out_zp = activation_params(*out_range)
    if node.relu:
        out_scale, out_zp = activation_params(0.0, out_range[1])
    c_out = node.out_shape.c
    w = node.weight * node.tap_mask()  # masked taps (pSConv) are stored as zeros
    flat = w.reshape(c_out, -1)
    s_w = weight_scales(flat, per_channel)
    zero = ~np.any(flat != 0, axis=1) if per_channel else np.full(c_out, not np.any(flat))
    if zero.any():
        b = np.abs(node.bias) if per_channel else np.full(c_out, np.abs(node.bias).max(initial=0.0))
        s_w = np.where(zero, np.maximum(b, 1e-12) / (in_scale * 2**20), s_w)
    wq = np.clip(np.round(flat / s_w[:, None]), -127, 127).astype(np.int8)
    bq = np.clip(np.round(node.bias / (in_scale * s_w)), -INT32_MAX, INT32_MAX)
    folded = bq.astype(np.int64) - in_zp * wq.astype(np.int64).sum(axis=1)
    room = INT32_MAX - flat.shape[1] * 127 * 128
    if room <= 0:
        raise ConfigError(f"{node.name}: {flat.shape[1]} weights per output are too many for an int32 accumulator")
    saturated = int(np.count_nonzero(np.abs(folded) > room))
    folded = np.clip(folded, -room, room).astype(np.int32)
    mults, shifts = zip(*(quantize_multiplier(in_scale * sc / out_scale) for sc in s_w), strict=True)
    return QConv2d(
        name=node.name,
        in_shape=node.in_shape,
        out_shape=node.out_shape,
        ksize=tuple(node.kernel),
        stride=tuple(node.stride),
        padding=tuple(node.padding),
        weight=wq.reshape(w.shape),
        channels=node.channels.astype(np.int64),
        bias=folded,
        mult=np.array(mults, dtype=np.int32),
        rshift=np.array(shifts, dtype=np.uint8),
        in_scale=float(in_scale),
        in_zp=int(in_zp),
        w_scale=s_w.astype(np.float64),
        out_scale=float(out_scale),
        out_zp=int(out_zp),
        act_min=int(out_zp) if node.relu else -128,
        act_max=127,
        relu=node.relu,
        pattern=node.pattern,
        p=p,
        s=s,
        saturated_biases=saturated,
        params=node.params,
    )


def quantize_pool(node: Pool2d, in_scale: float, in_zp: int) -> QPool2d:
    if node.op not in ("max", "avg"):
        raise ConfigError(f"{node.name}: pooling {node.op!r} is not supported (max, avg)")
    relu = bool(getattr(node, "relu", False))
    return QPool2d(
        node.name, node.in_shape, node.out_shape, node.op, tuple(node.kernel), tuple(node.stride),
        float(in_scale), int(in_zp), int(in_zp) if relu else -128, relu,
    )  # fmt: skip


def quantize_node(node, in_scale: float, in_zp: int, out_range, per_channel: bool):
    """A conv or pool node quantised, or None when it is neither."""
    if isinstance(node, Conv2d):
        return quantize_conv(node, in_scale, in_zp, out_range, per_channel)
    if isinstance(node, Pool2d):
        return quantize_pool(node, in_scale, in_zp)
    return None
