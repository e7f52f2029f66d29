"""SparseConv2d / SparseConv1d: convolutions with predefined channel connectivity (and an optional tap mask).

A convolution is a bipartite junction between channels, so it takes the same closed-form pattern as
:class:`~mcuflow.nn.sparse.SparseLinear` (:mod:`mcuflow.sparsity.patterns` with ``n_in = c_in``,
``n_out = c_out``): output channel ``o`` reads exactly ``d_in`` input channels ``channels[o]``, every
input channel feeds exactly ``out_degree`` output channels, and the device regenerates ``channels``
from ``(c_in, d_in, p, s)`` for the ``structured`` pattern.

The optional kernel-level mask follows pSConv (Kundu et al., IEEE TC 2020): ``tap_period`` P masks of
``kh x kw`` taps, and the kernel of slot ``(o, k)`` keeps the taps of mask ``(o + channels[o, k] + 1) % P``
(the float IR's ``taps``, docs/cnn.md). The masks are a closed form of ``(P, kh, kw, tap_keep)``, see
:func:`kernel_taps`. Only the compact weights ``(c_out, d_in, *kernel)`` are parameters; masked taps
are zero at initialisation and multiplied by the mask in ``forward``, so their gradient is zero and
they stay exactly zero through any training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mcuflow.sparsity.patterns import PATTERN_KINDS, in_degree, pattern_columns


def kernel_taps(period: int, kh: int, kw: int, keep: int) -> np.ndarray:
    """bool ``(period, kh, kw)``: the pSConv tap masks, a closed form of their four constants.

    Mask ``j < period - 1`` keeps the centre tap and ``keep - 1`` of the others: taken in row-major
    order without the centre, those from ``j * (keep - 1)`` on, cyclically (so consecutive residues
    rotate the shape around the centre); the last residue is dense, as in Kundu et al.'s periodic
    patterns (one of P kernels keeps every tap)."""
    taps = kh * kw
    if period < 2:
        raise ValueError(f"a tap mask needs a period of at least 2, got {period}")
    if not 1 <= keep < taps:
        raise ValueError(f"a tap mask keeps 1..{taps - 1} of the {kh}x{kw} taps, got {keep}")
    centre = (kh // 2) * kw + kw // 2
    others = [t for t in range(taps) if t != centre]
    masks = np.zeros((period, taps), dtype=bool)
    for j in range(period - 1):
        masks[j, centre] = True
        for m in range(keep - 1):
            masks[j, others[(j * (keep - 1) + m) % len(others)]] = True
    masks[period - 1] = True
    return masks.reshape(period, kh, kw)


class _SparseConv(nn.Module):
    """The channel-sparse convolution of ``dims`` spatial dimensions (1 or 2)."""

    dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        out_degree: int,
        stride=1,
        padding=0,
        seed: int = 0,
        pattern: str = "structured",
        tap_period: int = 0,
        tap_keep: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        if pattern not in PATTERN_KINDS:
            raise ValueError(f"unknown sparsity pattern {pattern!r}; choose one of {', '.join(PATTERN_KINDS)}")
        self.in_channels, self.out_channels, self.out_degree = in_channels, out_channels, out_degree
        self.kernel_size = _tuple(kernel_size, self.dims, "kernel_size")
        self.stride = _tuple(stride, self.dims, "stride")
        self.padding = _tuple(padding, self.dims, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"kernel {self.kernel_size}, stride {self.stride}, padding {self.padding} out of range")
        self.in_degree = in_degree(in_channels, out_channels, out_degree)
        self.seed, self.pattern = seed, pattern
        self.tap_period, self.tap_keep = tap_period, tap_keep
        cols = pattern_columns(pattern, in_channels, out_channels, out_degree, seed)
        self.register_buffer("channels", torch.from_numpy(np.ascontiguousarray(cols)).long())
        shape = (out_channels, self.in_degree, *self.kernel_size)
        if tap_period:
            kh, kw = (1, *self.kernel_size) if self.dims == 1 else self.kernel_size
            taps = kernel_taps(tap_period, kh, kw, tap_keep)
            which = (np.arange(out_channels)[:, None] + cols + 1) % tap_period  # (c_out, d_in)
            mask = taps[which].reshape(shape)
        elif tap_keep:
            raise ValueError("tap_keep needs a tap_period")
        else:
            mask = np.ones(shape, dtype=bool)
        self.register_buffer("tap_mask", torch.from_numpy(mask.astype(np.float32)))
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # He-normal on the true fan-in: the taps that exist, over the channels a kernel reads.
        fan_in = max(1.0, float(mask.sum()) / out_channels)
        with torch.no_grad():
            nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / fan_in))
            self.weight.mul_(self.tap_mask)  # masked taps start at zero and get zero gradient: they stay zero

    def dense_weight(self) -> torch.Tensor:
        """The full ``(c_out, c_in, *kernel)`` weight, zeros off the channel pattern and the tap mask."""
        w = torch.zeros(
            self.out_channels, self.in_channels, *self.kernel_size, dtype=self.weight.dtype, device=self.weight.device
        )
        index = self.channels.view(*self.channels.shape, *([1] * self.dims)).expand_as(self.weight)
        return w.scatter(1, index, self.weight * self.tap_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One dense conv with the scattered weight: faster on CPU than per-group gathers at LeNet sizes,
        # and autograd sends gradients only to the compact weights.
        conv = F.conv2d if self.dims == 2 else F.conv1d
        return conv(x, self.dense_weight(), self.bias, self.stride, self.padding)

    def channel_mask(self) -> torch.Tensor:
        """bool ``(c_out, c_in)``: which input channels each output channel reads."""
        m = torch.zeros(self.out_channels, self.in_channels, dtype=torch.bool)
        return m.scatter(1, self.channels.cpu(), True)

    @property
    def nnz(self) -> int:
        """Weights that exist (the taps the mask keeps on the channels each output reads)."""
        return int(self.tap_mask.sum())

    def extra_repr(self) -> str:
        taps = f", tap_period={self.tap_period}, tap_keep={self.tap_keep}" if self.tap_period else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, out_degree={self.out_degree}, in_degree={self.in_degree}, "
            f"pattern={self.pattern}, seed={self.seed}{taps}"
        )


class SparseConv2d(_SparseConv):
    """A 2-D convolution whose output channel ``o`` reads only input channels ``channels[o]``."""

    dims = 2


class SparseConv1d(_SparseConv):
    """A 1-D convolution (inputs ``(N, C, L)``) with the channel pattern of :class:`SparseConv2d`."""

    dims = 1


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, list | tuple) and len(value) == n and all(isinstance(v, int) for v in value):
        return tuple(int(v) for v in value)
    raise ValueError(f"{name} must be an integer or {n} integers, got {value!r}")
