"""Where a value between two layers stands: its IR shape, and the order its framework holds it in.

torch and ONNX hold feature maps as NCHW; the float IR as flat HWC vectors (docs/cnn.md). A front end
carries a :class:`Layout` from layer to layer so that it can lower 1-D convolutions as ``h == 1``, and
permute the columns of the linear layer that reads a flattened map instead of adding a node. No torch
here: the ONNX front end uses it too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.ir.graph import Linear, Shape


class UnsupportedLayerError(ConfigError):
    """A layer the compiler has no kernel for."""


@dataclass(frozen=True)
class Layout:
    """A value between two modules: its IR ``shape``, how torch holds it (``dims`` 2: ``(N, C, H, W)``,
    1: ``(N, C, L)``, 0: flat ``(N, n)``), and whether torch's flat order is CHW where the IR's is HWC
    (``chw``: after a Flatten of a map, until a linear layer has read it)."""

    shape: Shape
    dims: int = 0
    chw: bool = False

    @property
    def width(self) -> int:
        return self.shape.size

    @property
    def permuted(self) -> bool:
        """torch's flat order differs from the IR's (several channels at several positions)."""
        return self.chw and self.shape.c > 1 and self.shape.h * self.shape.w > 1

    def describe(self) -> str:
        s = self.shape
        if self.dims == 2:
            return f"a {s.c}x{s.h}x{s.w} feature map"
        if self.dims == 1:
            return f"a {s.c}x{s.w} feature map"
        return f"a vector of {s.size}"


def vector(n: int) -> Layout:
    return Layout(Shape(1, 1, n))


def hwc_order(shape: Shape) -> np.ndarray:
    """``order[j]`` is the CHW index of HWC position ``j`` (``x_hwc = x_chw[order]``)."""
    return np.arange(shape.size).reshape(shape.c, shape.h, shape.w).transpose(1, 2, 0).ravel()


def permute_columns(node: Linear, layout: Layout) -> Linear:
    """``node`` reading its input in the IR's HWC order, where torch's weights read CHW."""
    inverse = np.argsort(hwc_order(layout.shape))  # CHW index -> HWC position
    columns = inverse[node.columns]
    if node.pattern == "dense":
        # Keep a dense layer's columns 0..n-1: reorder each row's weights instead.
        order = np.argsort(columns, axis=1)
        return dataclasses.replace(node, columns=np.take_along_axis(columns, order, 1),
                                   weight=np.take_along_axis(node.weight, order, 1))  # fmt: skip
    # A permuted closed-form pattern is no longer the closed form: store its columns.
    return dataclasses.replace(node, columns=columns, pattern="explicit", params=None)
