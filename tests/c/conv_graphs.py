"""Hand-built float IR convolutional heads with random weights, for the conv compiler tests."""

from __future__ import annotations

import hashlib

import numpy as np

from mcuflow.ir.graph import Conv2d, ExitBranch, Graph, Linear, Pool2d, Relu, Shape
from mcuflow.sparsity.patterns import structured_columns, structured_params


def conv(name, in_shape, c_out, k, rng, *, pad=0, stride=1, d_out=None, relu=False, seed=0, depthwise=False):
    kh, kw = k if isinstance(k, tuple) else (k, k)
    pads = (pad, pad, pad, pad) if isinstance(pad, int) else pad
    oh = (in_shape.h + pads[0] + pads[2] - kh) // stride + 1
    ow = (in_shape.w + pads[1] + pads[3] - kw) // stride + 1
    c_in = in_shape.c
    params = None
    if depthwise:
        channels, pattern = np.arange(c_out, dtype=np.int64)[:, None], "depthwise"
    elif d_out is None:
        channels, pattern = np.tile(np.arange(c_in, dtype=np.int64), (c_out, 1)), "dense"
    else:
        params = structured_params(c_in, c_out, d_out, seed)
        channels, pattern = structured_columns(params).astype(np.int64), "structured"
    d_in = channels.shape[1]
    w = rng.normal(0, (2.0 / (kh * kw * d_in)) ** 0.5, (c_out, kh, kw, d_in))
    return Conv2d(
        name, in_shape, Shape(oh, ow, c_out), (kh, kw), (stride, stride), pads, w, channels,
        rng.normal(0, 0.1, c_out), pattern=pattern, params=params, relu=relu,
    )  # fmt: skip


def pool(name, in_shape, k, op="max", stride=None):
    kh, kw = k if isinstance(k, tuple) else (k, k)
    sh, sw = (stride or kh, stride or kw)
    out = Shape((in_shape.h - kh) // sh + 1, (in_shape.w - kw) // sw + 1, in_shape.c)
    return Pool2d(name, in_shape, out, op, (kh, kw), (sh, sw))


def linear(name, n_in, n_out, rng):
    cols = np.tile(np.arange(n_in, dtype=np.int64), (n_out, 1))
    return Linear(name, n_in, n_out, rng.normal(0, (2.0 / n_in) ** 0.5, (n_out, n_in)), cols, rng.normal(0, 0.1, n_out))


def small_cnn(
    seed: int = 0,
    d_out: int | None = 4,
    classes: int = 4,
    side: int = 12,
    c1: int = 4,
    c2: int = 8,
    stride: int = 1,
    exit_pool: str = "avg",
) -> Graph:
    """side x side x 1 -> conv 3x3 pad 1 (1->4, ReLU) -> maxpool 2 -> conv 3x3 (4->8, channel-sparse with
    out-degree ``d_out``, or dense; ``stride``) -> ReLU; conv1 pads (1, 0, 2, 1); an exit after the first block (avgpool 2 + linear), a linear
    exit at the end (the head output, a feature map, is what gets offloaded)."""
    rng = np.random.default_rng(seed)
    s0 = Shape(side, side, 1)
    c1 = conv("conv1", s0, c1, 3, rng, pad=(1, 0, 2, 1))
    p1 = pool("pool1", c1.out_shape, 2)
    c2 = conv("conv2", p1.out_shape, c2, 3, rng, d_out=d_out, seed=seed, stride=stride)
    head = [c1, Relu("relu1", c1.n_out), p1, c2, Relu("relu2", c2.n_out)]
    bp = pool("exit0.pool", p1.out_shape, 2, op=exit_pool)
    b0 = ExitBranch("exit0", 3, [bp, linear("exit0.fc", bp.n_out, classes, rng)])
    b1 = ExitBranch("exit1", 5, [linear("exit1.fc", c2.n_out, classes, rng)])
    h = hashlib.sha256(f"small_cnn{seed}{d_out}{c1}{c2}{stride}".encode()).hexdigest()
    return Graph("small_cnn", s0.size, head, [b0, b1], classes, h, input_shape=s0)
