"""ReLU fusion for convolutional nodes: a ReLU after a ``Conv2d`` becomes its clamp (as for ``Linear``);
a ReLU after a ``Pool2d`` becomes the pool's clamp at its zero point (``relu(pool(x))`` is exact in int8:
pooling keeps its input's scale and zero point)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuflow.ir.graph import Conv2d, Pool2d


@dataclass
class FusedPool2d(Pool2d):
    """A ``Pool2d`` with the ReLU after it fused in."""

    relu: bool = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = super().forward(x)
        return np.maximum(y, 0.0) if self.relu else y


def fuse_relu_into(prev) -> object | None:
    """``prev`` with the following ReLU fused in (possibly a new node), or None when it cannot take it."""
    if isinstance(prev, Conv2d) and not prev.relu and prev.act_max is None:
        prev.relu = True
        return prev
    if isinstance(prev, Pool2d) and not getattr(prev, "relu", False):
        return FusedPool2d(prev.name, prev.in_shape, prev.out_shape, prev.op, prev.kernel, prev.stride, relu=True)
    return None
