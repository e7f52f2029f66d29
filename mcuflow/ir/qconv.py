"""The quantised IR of convolutional heads: :class:`QConv2d` and :class:`QPool2d` (feature maps HWC).

A convolution's arithmetic is a :class:`~mcuflow.ir.quantized.QLinear`'s per output pixel and channel:

    acc[y, x, o] = bias[o] + sum_{i, j, k} w[o, i, j, k] * xpad[y * sy + i, x * sx + j, channels[o, k]]
    out[y, x, o] = clamp(((acc * mult[o] + 2**(rshift[o]-1)) >> rshift[o]) + out_zp, act_min, act_max)

``xpad`` is the input padded with the **input zero point** (a real zero), so folding
``-in_zp * sum(w[o])`` into the bias stays exact at the borders. Channels always follow the closed form
``channels[o, k] = (u * p) mod c_in`` with ``u = (t + (t // c_in) * s) mod c_in``, ``t = o * d_in + k``
(dense: ``p = 1, s = 0, d_in = c_in``): the kernel regenerates them and stores no index.

Pooling keeps the input's scale and zero point: max takes the window maximum, average
``floor((sum + n // 2) / n)`` over the ``n = kh * kw`` window values; both then clamp to
``[act_min, 127]`` (a fused ReLU raises ``act_min`` to the zero point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuflow.ir.graph import Shape


@dataclass
class ConvPacked:
    """A conv/pool layer's stored weights (duck-types :class:`~mcuflow.ir.packed.PackedWeights`)."""

    format: str  # "conv" | "maxpool" | "avgpool"
    values: np.ndarray  # int8, flat, in the kernel's order
    nnz: int  # weights of the channel pattern (what the kernel multiplies per output pixel)
    col_idx: None = None
    row_ptr: None = None
    col_ctype: None = None
    row_ctype: None = None

    @property
    def weight_bytes(self) -> int:
        return int(self.values.size)

    @property
    def index_bytes(self) -> int:
        return 0

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes


@dataclass(frozen=True)
class ConvKernel:
    """What the generated code passes to ``mcuflow_conv`` / ``mcuflow_pool`` (``mcuflow_conv_t``)."""

    function: str
    weights: np.ndarray  # int8, flat: per output channel its window of d_in channels x taps, in pieces
    degree: int  # d_in (conv), 0 (pool)
    p: int = 1
    s: int = 0
    w_aligned: bool = False
    x_aligned: bool = False
    row_pad: int = 0  # dense rows: zero weights appended so a row is a multiple of 4 (word loads, LDRD)
    u_count: int = 0  # channels of the permuted patch (c_in and the repeated head the windows need)
    scratch_entries: int = 0  # int16 entries of the shared scratch (the permuted patch)

    @property
    def scratch_bytes(self) -> int:
        return 2 * self.scratch_entries


@dataclass
class QConv2d:
    name: str
    in_shape: Shape
    out_shape: Shape
    ksize: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    weight: np.ndarray  # int8 (c_out, kh, kw, d_in)
    channels: np.ndarray  # int64 (c_out, d_in)
    bias: np.ndarray  # int32 (c_out,), zero point folded in
    mult: np.ndarray  # int32 (c_out,)
    rshift: np.ndarray  # uint8 (c_out,)
    in_scale: float
    in_zp: int
    w_scale: np.ndarray  # float64 (c_out,)
    out_scale: float
    out_zp: int
    act_min: int
    act_max: int
    relu: bool
    pattern: str
    p: int  # the closed form of the channels (see the module docstring)
    s: int
    packed: ConvPacked | None = None
    kernel: ConvKernel | None = None  # set by passes.plan_kernels
    saturated_biases: int = 0
    params: object | None = None  # StructuredParams of a structured pattern (for the manifest)

    @property
    def kind(self) -> str:
        return "conv"

    @property
    def n_in(self) -> int:
        return self.in_shape.size

    @property
    def n_out(self) -> int:
        return self.out_shape.size

    @property
    def degree(self) -> int:
        return int(self.channels.shape[1])

    @property
    def taps(self) -> int:
        return self.ksize[0] * self.ksize[1]

    @property
    def nnz(self) -> int:
        return int(self.weight.size)

    @property
    def macs(self) -> int:
        return self.out_shape.h * self.out_shape.w * self.nnz


@dataclass
class QPool2d:
    name: str
    in_shape: Shape
    out_shape: Shape
    op: str  # "max" | "avg"
    ksize: tuple[int, int]
    stride: tuple[int, int]
    scale: float
    zp: int
    act_min: int
    relu: bool
    packed: ConvPacked | None = None
    kernel: ConvKernel | None = None

    @property
    def kind(self) -> str:
        return "pool"

    @property
    def n_in(self) -> int:
        return self.in_shape.size

    @property
    def n_out(self) -> int:
        return self.out_shape.size

    @property
    def in_scale(self) -> float:
        return self.scale

    @property
    def in_zp(self) -> int:
        return self.zp

    @property
    def out_scale(self) -> float:
        return self.scale

    @property
    def out_zp(self) -> int:
        return self.zp

    @property
    def act_max(self) -> int:
        return 127

    @property
    def nnz(self) -> int:
        return 0

    @property
    def macs(self) -> int:
        return 0

    @property
    def degree(self) -> int:
        return 0


def closed_form_channels(c_in: int, c_out: int, d_in: int, p: int, s: int) -> np.ndarray:
    """int64 (c_out, d_in): the channels ``mcuflow_conv`` regenerates from ``(c_in, d_in, p, s)``."""
    t = np.arange(c_out * d_in, dtype=np.int64)
    u = (t + (t // c_in) * s) % c_in
    return ((u * p) % c_in).reshape(c_out, d_in)


def row_pieces(c_in: int, c_out: int, d_in: int, s: int) -> list[list[tuple[int, int]]]:
    """Per output channel, its window of the permuted channels as (u_start, length) pieces, as the kernel
    walks them: one piece, or two where the row straddles a pass boundary (``u`` jumps by ``s``)."""
    rows = []
    u, left = 0, c_in
    for _ in range(c_out):
        if left >= d_in:
            rows.append([(u, d_in)])
            u, left = (u + d_in) % c_in, left - d_in
            if left == 0:
                left, u = c_in, (u + s) % c_in
        else:
            rest = d_in - left
            u2 = (u + left + s) % c_in
            rows.append([(u, left), (u2, rest)])
            u, left = (u2 + rest) % c_in, c_in - rest
    return rows
