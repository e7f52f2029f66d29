"""The float IR the front ends produce: a chain of nodes for the head, branches for the exits.

A linear node always holds its weights row-sparse: ``weight[r, k]`` multiplies
input ``columns[r, k]``. A dense layer is the special case ``columns[r] = 0..n_in-1``.
``pattern`` says where the columns come from (``dense``, ``structured`` with its
closed-form ``params``, ``random``, or ``explicit`` for anything read from a file).

Feature maps (convolutional heads) travel between nodes as flat vectors in **HWC order**
(channels fastest, then width, then height: ``x[(y * W + x) * C + c]``), the order the int8
kernels read. A front end whose framework is NCHW (torch, ONNX) permutes where it flattens:
the ``Linear`` after a feature map reads HWC columns. A vector is the shape ``1 x 1 x n``.
A convolution holds its weights channel-sparse, as a linear node row-sparse:
``weight[o, :, :, k]`` is the kernel applied to input channel ``channels[o, k]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mcuflow.sparsity.patterns import StructuredParams


@dataclass(frozen=True)
class Shape:
    """A feature map's height, width and channels (flattened in HWC order)."""

    h: int
    w: int
    c: int

    @property
    def size(self) -> int:
        return self.h * self.w * self.c


def _hwc(x: np.ndarray, shape: Shape) -> np.ndarray:
    return x[:, : shape.size].reshape(len(x), shape.h, shape.w, shape.c)


@dataclass
class Conv2d:
    """A 2-D convolution (Conv1d is ``h == 1``); padding is with real zeros.

    ``channels[o]`` are the ``d_in`` input channels output channel ``o`` reads: all of them for a
    dense convolution (``pattern="dense"``), ``o // (c_out // c_in)`` for a depthwise one
    (``"depthwise"``), the closed form of :mod:`mcuflow.sparsity.patterns` over channels for
    ``"structured"`` (``params`` with ``n_in = c_in``, ``n_out = c_out``), anything for ``"explicit"``.
    ``taps``, when set, is the kernel-level periodic mask (pSConv): ``P`` masks of ``kh x kw`` and
    the slot ``(o, k)`` keeps the taps of mask ``(o + channels[o, k] + 1) % P``; masked weights are 0.
    ``act_max`` clamps after the ReLU (6.0 for ReLU6)."""

    name: str
    in_shape: Shape
    out_shape: Shape
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    weight: np.ndarray  # float64 (c_out, kh, kw, d_in)
    channels: np.ndarray  # int64 (c_out, d_in)
    bias: np.ndarray  # float64 (c_out,)
    pattern: str = "dense"
    params: StructuredParams | None = None
    taps: np.ndarray | None = None  # bool (P, kh, kw)
    relu: bool = False
    act_max: float | None = None

    @property
    def kind(self) -> str:
        return "conv2d"

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
    def nnz(self) -> int:
        """Weights stored (masked taps excluded)."""
        return int(np.count_nonzero(self.tap_mask())) if self.taps is not None else int(self.weight.size)

    @property
    def macs(self) -> int:
        return self.out_shape.h * self.out_shape.w * self.nnz

    def tap_mask(self) -> np.ndarray:
        """bool (c_out, kh, kw, d_in): the weights that exist."""
        c_out, kh, kw, d_in = self.weight.shape
        if self.taps is None:
            return np.ones((c_out, kh, kw, d_in), dtype=bool)
        which = (np.arange(c_out)[:, None] + self.channels + 1) % len(self.taps)  # (c_out, d_in)
        return np.transpose(self.taps[which], (0, 2, 3, 1))

    def dense_weight(self) -> np.ndarray:
        """float64 (c_out, kh, kw, c_in), zeros off the channel pattern and the tap mask."""
        c_out, kh, kw, d_in = self.weight.shape
        full = np.zeros((c_out, kh, kw, self.in_shape.c))
        w = self.weight * self.tap_mask()
        for k in range(d_in):
            full[np.arange(c_out), :, :, self.channels[:, k]] += w[:, :, :, k]
        return full

    def forward(self, x: np.ndarray) -> np.ndarray:
        top, left, bottom, right = self.padding
        xp = np.pad(_hwc(x, self.in_shape), ((0, 0), (top, bottom), (left, right), (0, 0)))
        kh, kw = self.kernel
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
        win = win[:, :: self.stride[0], :: self.stride[1]][:, : self.out_shape.h, : self.out_shape.w]
        y = np.einsum("nyxcij,oijc->nyxo", win, self.dense_weight()) + self.bias
        if self.relu:
            y = np.maximum(y, 0.0)
        if self.act_max is not None:
            y = np.minimum(y, self.act_max)
        return y.reshape(len(x), -1)


@dataclass
class Pool2d:
    """Max or average pooling, no padding; global average pooling is ``kernel == (h, w)``."""

    name: str
    in_shape: Shape
    out_shape: Shape
    op: str  # "max" | "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]

    @property
    def kind(self) -> str:
        return f"{self.op}pool2d"

    @property
    def n_in(self) -> int:
        return self.in_shape.size

    @property
    def n_out(self) -> int:
        return self.out_shape.size

    def forward(self, x: np.ndarray) -> np.ndarray:
        kh, kw = self.kernel
        win = np.lib.stride_tricks.sliding_window_view(_hwc(x, self.in_shape), (kh, kw), axis=(1, 2))
        win = win[:, :: self.stride[0], :: self.stride[1]][:, : self.out_shape.h, : self.out_shape.w]
        y = win.max(axis=(4, 5)) if self.op == "max" else win.mean(axis=(4, 5))
        return y.reshape(len(x), -1)


@dataclass
class Pad:
    """Zero-pad the input vector from ``n_in`` to ``n_out`` (flatten is implicit: inputs are vectors)."""

    name: str
    n_in: int
    n_out: int

    @property
    def kind(self) -> str:
        return "pad"


@dataclass
class Relu:
    name: str
    width: int

    @property
    def kind(self) -> str:
        return "relu"


@dataclass
class Linear:
    name: str
    n_in: int
    n_out: int
    weight: np.ndarray  # float64 (n_out, d)
    columns: np.ndarray  # int64 (n_out, d)
    bias: np.ndarray  # float64 (n_out,)
    pattern: str = "dense"
    params: StructuredParams | None = None
    relu: bool = False  # set by the fuse_relu pass

    @property
    def kind(self) -> str:
        return "linear"

    @property
    def degree(self) -> int:
        return int(self.columns.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.columns.size)

    @property
    def macs(self) -> int:
        return self.nnz

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.einsum("brk,rk->br", x[:, self.columns], self.weight) + self.bias
        return np.maximum(y, 0.0) if self.relu else y


Node = Pad | Relu | Linear | Conv2d | Pool2d


@dataclass
class ExitBranch:
    """An exit reading the head's value after ``at`` head nodes (``at == len(head)``: the head output).

    A ``final`` exit has no nodes: it reads the head output as the class logits (the whole model is on
    the device) and always answers, whatever the exit threshold."""

    name: str
    at: int
    nodes: list[Node] = field(default_factory=list)
    final: bool = False


@dataclass
class Graph:
    name: str
    input_len: int
    head: list[Node]
    exits: list[ExitBranch]
    num_classes: int
    model_hash: str
    source: str = "torch"
    input_shape: Shape | None = None  # a feature map input (h, w, c), HWC-flattened into input_len

    def width_after(self, at: int) -> int:
        w = self.input_len
        for node in self.head[:at]:
            w = node.n_out if isinstance(node, Pad | Linear | Conv2d | Pool2d) else w
        return w

    def shape_after(self, at: int) -> Shape:
        """The feature-map shape after ``at`` head nodes (a vector is ``1 x 1 x n``)."""
        shape = self.input_shape or Shape(1, 1, self.input_len)
        for node in self.head[:at]:
            if isinstance(node, Conv2d | Pool2d):
                shape = node.out_shape
            elif isinstance(node, Pad | Linear):
                shape = Shape(1, 1, node.n_out)
        return shape

    @property
    def intermediate_len(self) -> int:
        return self.width_after(len(self.head))

    def forward(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """Float forward in float64: (exit logits, head output, every node's output by name)."""
        acts: dict[str, np.ndarray] = {}
        exit_logits: list[np.ndarray | None] = [None] * len(self.exits)
        h = np.asarray(x, dtype=np.float64)
        for i in range(len(self.head) + 1):
            for e, branch in enumerate(self.exits):
                if branch.at == i:
                    z = h
                    for node in branch.nodes:
                        z = run_node(node, z)
                        acts[node.name] = z
                    exit_logits[e] = z
            if i < len(self.head):
                h = run_node(self.head[i], h)
                acts[self.head[i].name] = h
        return exit_logits, h, acts  # type: ignore[return-value]


def run_node(node: Node, x: np.ndarray) -> np.ndarray:
    if isinstance(node, Pad):
        return np.pad(x, ((0, 0), (0, node.n_out - node.n_in)))
    if isinstance(node, Relu):
        return np.maximum(x, 0.0)
    return node.forward(x)
