"""The integer contract of convolutional layers (``mcuflow.ir.qconv``), which ``firmware/kernels/conv.h``
and ``pool.h`` match bit for bit. Feature maps are HWC-flattened int8 vectors."""

from __future__ import annotations

import numpy as np

from mcuflow.ir.qconv import QConv2d, QPool2d


def _requantize(acc: np.ndarray, mult: np.ndarray, rshift: np.ndarray) -> np.ndarray:
    acc = acc.astype(np.int64)
    mult = mult.astype(np.int64)
    rshift = rshift.astype(np.int64)
    return (acc * mult + (np.int64(1) << (rshift - 1))) >> rshift


def _windows(x: np.ndarray, shape, ksize, stride, out_shape) -> np.ndarray:
    """(N, OH, OW, C, kh, kw) windows of HWC maps ``x`` (N, H, W, C)."""
    win = np.lib.stride_tricks.sliding_window_view(x, ksize, axis=(1, 2))
    return win[:, :: stride[0], :: stride[1]][:, : out_shape.h, : out_shape.w]


def conv2d(layer: QConv2d, x: np.ndarray) -> np.ndarray:
    """int8 ``x`` (N, >= n_in) -> int8 (N, n_out), HWC."""
    n = len(x)
    ish, osh = layer.in_shape, layer.out_shape
    top, left, bottom, right = layer.padding
    xm = x[:, : ish.size].astype(np.int64).reshape(n, ish.h, ish.w, ish.c)
    xp = np.pad(xm, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=layer.in_zp)
    win = _windows(xp, ish, layer.ksize, layer.stride, osh)  # N, OH, OW, C, kh, kw
    w = layer.weight.astype(np.int64)  # c_out, kh, kw, d_in
    acc = np.zeros((n, osh.h, osh.w, osh.c), dtype=np.int64)
    for k in range(layer.degree):
        sel = win[:, :, :, layer.channels[:, k]]  # N, OH, OW, c_out, kh, kw
        acc += np.einsum("nyxoij,oij->nyxo", sel, w[:, :, :, k])
    acc += layer.bias.astype(np.int64)
    if np.abs(acc).max(initial=0) > 2**31 - 1:  # cannot happen: quantize bounds the bias
        raise AssertionError(f"{layer.name}: int32 accumulator overflow")
    y = _requantize(acc, layer.mult, layer.rshift) + layer.out_zp
    return np.clip(y, layer.act_min, layer.act_max).astype(np.int8).reshape(n, -1)


def pool2d(layer: QPool2d, x: np.ndarray) -> np.ndarray:
    n = len(x)
    ish = layer.in_shape
    xm = x[:, : ish.size].astype(np.int64).reshape(n, ish.h, ish.w, ish.c)
    win = _windows(xm, ish, layer.ksize, layer.stride, layer.out_shape)
    if layer.op == "max":
        y = win.max(axis=(4, 5))
    else:
        count = layer.ksize[0] * layer.ksize[1]
        y = (win.sum(axis=(4, 5)) + count // 2) // count  # floor division, as the kernel's
    return np.clip(y, layer.act_min, 127).astype(np.int8).reshape(n, -1)


def run_conv_layer(layer, x: np.ndarray) -> np.ndarray | None:
    """A conv or pool layer on ``x``, or None when ``layer`` is neither."""
    if isinstance(layer, QConv2d):
        return conv2d(layer, x)
    if isinstance(layer, QPool2d):
        return pool2d(layer, x)
    return None
