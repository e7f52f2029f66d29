"""SparseLinear: a linear layer with predefined structured sparsity."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mcuflow.sparsity.patterns import PATTERN_KINDS, in_degree, pattern_columns


class SparseLinear(nn.Module):
    """``y = W x + b`` where row ``r`` of ``W`` only has entries at ``columns[r]``.

    Only the ``out_features * in_degree`` nonzero weights are parameters (shape
    ``(out_features, in_degree)``), so weights off the pattern do not exist: they
    are zero by construction, with zero gradient, through any training. The
    pattern is fixed at construction and reproducible from ``(pattern, seed)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        out_degree: int,
        seed: int = 0,
        pattern: str = "structured",
        bias_init: float = 0.1,
    ):
        super().__init__()
        if pattern not in PATTERN_KINDS:
            raise ValueError(f"unknown sparsity pattern {pattern!r}; choose one of {', '.join(PATTERN_KINDS)}")
        self.in_features = in_features
        self.out_features = out_features
        self.out_degree = out_degree
        self.in_degree = in_degree(in_features, out_features, out_degree)
        self.seed = seed
        self.pattern = pattern
        cols = pattern_columns(pattern, in_features, out_features, out_degree, seed)
        self.register_buffer("columns", torch.from_numpy(np.ascontiguousarray(cols)).long())
        self.weight = nn.Parameter(torch.empty(out_features, self.in_degree))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        # He-normal on the true fan-in, as in the paper's released code.
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / self.in_degree))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scattering the compact weights into a dense matrix and using one matmul is
        # 5-10x faster on CPU than gathering inputs per row for MCU-sized layers;
        # autograd sends gradients only to the compact weights either way.
        return nn.functional.linear(x, self.dense_weight(), self.bias)

    def dense_weight(self) -> torch.Tensor:
        """The full ``(out, in)`` weight matrix, zeros off the pattern."""
        w = torch.zeros(self.out_features, self.in_features, dtype=self.weight.dtype, device=self.weight.device)
        return w.scatter(1, self.columns, self.weight)

    def mask(self) -> torch.Tensor:
        m = torch.zeros(self.out_features, self.in_features, dtype=torch.bool)
        return m.scatter(1, self.columns.cpu(), True)

    @property
    def density(self) -> float:
        return self.in_degree / self.in_features

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"out_degree={self.out_degree}, in_degree={self.in_degree}, pattern={self.pattern}, seed={self.seed}"
        )


class Pad(nn.Module):
    """Zero-pad the last dimension to ``size`` (the paper pads MNIST 784 -> 800)."""

    def __init__(self, in_features: int, size: int):
        super().__init__()
        if size < in_features:
            raise ValueError(f"cannot pad {in_features} inputs down to {size}")
        self.in_features = in_features
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if x.dim() > 2 else x
        return nn.functional.pad(x, (0, self.size - x.shape[-1]))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.size}"
