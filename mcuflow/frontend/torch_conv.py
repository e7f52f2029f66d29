"""Convolutional torch layers -> float IR (``Conv2d``, ``Pool2d``), and the layout bookkeeping they need.

torch holds feature maps as ``(N, C, H, W)`` (``(N, C, L)`` for 1-D); the IR as flat HWC vectors
(docs/cnn.md). :class:`Layout` says, after each module, what shape the value has and in which order
torch holds it, so that the lowering can

* lower a ``Conv1d`` as the IR's ``h == 1`` convolution (``Shape(1, L, C)``);
* permute the columns of the first linear layer after a ``Flatten`` of a map with several channels
  and positions (torch's flat order is CHW, the IR's HWC) instead of adding a node;
* and let :mod:`mcuflow.frontend.torch_check` bring torch's values into IR order to compare them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.frontend.layout import Layout, UnsupportedLayerError
from mcuflow.ir.graph import Conv2d, Node, Pool2d, Shape
from mcuflow.nn.conv import SparseConv1d, SparseConv2d, kernel_taps
from mcuflow.sparsity.patterns import structured_params


def to_ir_order(t: torch.Tensor, layout: Layout) -> torch.Tensor:
    """torch's value as the IR holds it: ``(N, size)`` in HWC order."""
    n = len(t)
    if t.dim() == 4:
        return t.permute(0, 2, 3, 1).reshape(n, -1)
    if t.dim() == 3:
        return t.permute(0, 2, 1).reshape(n, -1)
    if layout.permuted:
        s = layout.shape
        return t.reshape(n, s.c, s.h, s.w).permute(0, 2, 3, 1).reshape(n, -1)
    return t.reshape(n, -1)


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _pair(v, name: str, path: str, kind: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return (int(v[0]), int(v[1]))
    raise UnsupportedLayerError(f"{path} ({kind}) has {name} {v!r}, which does not compile")


_CONV_TYPES = {nn.Conv2d: 2, nn.Conv1d: 1, SparseConv2d: 2, SparseConv1d: 1}
_POOL_TYPES = {nn.MaxPool2d: 2, nn.MaxPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool1d: 1}
_GLOBAL_TYPES = {nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool1d: 1}


def _expect_map(module: nn.Module, path: str, layout: Layout, dims: int) -> None:
    if layout.dims != dims:
        kind = type(module).__name__
        raise ConfigError(f"{path} ({kind}) takes a {dims}-D feature map but receives {layout.describe()}")


def _spatial(layout: Layout, dims: int, values: tuple[int, ...]) -> tuple[int, int]:
    """A 1-D size/stride as the IR's (1, n) with h == 1; a 2-D one as is."""
    return (1, values[0]) if dims == 1 else (values[0], values[1])


def lower_conv(module: nn.Module, path: str, layout: Layout) -> tuple[Conv2d, Layout]:
    kind = type(module).__name__
    dims = _CONV_TYPES[type(module)]
    _expect_map(module, path, layout, dims)
    c_in, c_out = module.in_channels, module.out_channels
    if layout.shape.c != c_in:
        raise ConfigError(f"{path} ({kind}) expects {c_in} channels but receives {layout.describe()}")
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        if module.padding_mode != "zeros":
            raise UnsupportedLayerError(
                f"{path} ({kind}) pads with {module.padding_mode!r}; the device pads with zeros"
            )
        if any(d != 1 for d in module.dilation):
            raise UnsupportedLayerError(f"{path} ({kind}) has dilation {module.dilation}; only dilation 1 compiles")
        if isinstance(module.padding, str):
            raise UnsupportedLayerError(f"{path} ({kind}) has padding={module.padding!r}; give it in numbers")
        groups = module.groups
        weight = _np(module.weight)  # (c_out, c_in / groups, *k)
        per_group_in, per_group_out = c_in // groups, c_out // groups
        group = np.arange(c_out) // per_group_out
        channels = group[:, None] * per_group_in + np.arange(per_group_in)[None, :]
        pattern = "dense" if groups == 1 else "depthwise" if groups == c_in else "explicit"
        params, taps = None, None
    else:
        weight = _np(module.weight * module.tap_mask)  # (c_out, d_in, *k): masked taps are exactly 0
        channels = module.channels.detach().cpu().numpy().astype(np.int64)
        if module.pattern == "structured":
            pattern = "structured"
            params = structured_params(c_in, c_out, module.out_degree, module.seed)
        else:
            pattern, params = "explicit", None  # a seeded random pattern: the device stores its indices
        taps = None
        if module.tap_period:
            kh, kw = (1, *module.kernel_size) if dims == 1 else module.kernel_size
            taps = kernel_taps(module.tap_period, kh, kw, module.tap_keep)
    if dims == 1:
        weight = weight[:, :, None, :]
    kernel = _spatial(layout, dims, tuple(module.kernel_size))
    stride = _spatial(layout, dims, tuple(module.stride))
    pad = (0, module.padding[0]) if dims == 1 else tuple(module.padding)
    s = layout.shape
    h = (s.h + 2 * pad[0] - kernel[0]) // stride[0] + 1
    w = (s.w + 2 * pad[1] - kernel[1]) // stride[1] + 1
    if h < 1 or w < 1:
        raise ConfigError(f"{path} ({kind}) has a kernel larger than its input, {layout.describe()}")
    bias = _np(module.bias) if module.bias is not None else np.zeros(c_out)
    out = Shape(h, w, c_out)
    node = Conv2d(path, s, out, kernel, stride, (pad[0], pad[1], pad[0], pad[1]),
                  np.ascontiguousarray(weight.transpose(0, 2, 3, 1)), channels, bias,
                  pattern=pattern, params=params, taps=taps)  # fmt: skip
    return node, Layout(out, dims, True)


def lower_pool(module: nn.Module, path: str, layout: Layout) -> tuple[Pool2d, Layout]:
    kind = type(module).__name__
    s = layout.shape
    if type(module) in _GLOBAL_TYPES:
        dims = _GLOBAL_TYPES[type(module)]
        _expect_map(module, path, layout, dims)
        size = module.output_size
        if size not in (1, (1,), (1, 1), [1], [1, 1]):
            raise UnsupportedLayerError(
                f"{path} ({kind}) pools to {size}; only global average pooling (output size 1) compiles"
            )
        out = Shape(1, 1, s.c)
        return Pool2d(path, s, out, "avg", (s.h, s.w), (s.h, s.w)), Layout(out, dims, True)
    dims = _POOL_TYPES[type(module)]
    _expect_map(module, path, layout, dims)
    n = dims
    k = _pair(module.kernel_size, "kernel_size", path, kind) if n == 2 else (1, _one(module.kernel_size))
    stride_v = module.stride if module.stride is not None else module.kernel_size
    st = _pair(stride_v, "stride", path, kind) if n == 2 else (1, _one(stride_v))
    padding = _pair(module.padding, "padding", path, kind) if n == 2 else (0, _one(module.padding))
    if padding != (0, 0) or module.ceil_mode:
        raise UnsupportedLayerError(
            f"{path} ({kind}) has padding {module.padding} / ceil_mode {module.ceil_mode}; the device pools "
            "without padding, rounding down"
        )
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        op = "max"
        dilation = _pair(module.dilation, "dilation", path, kind) if n == 2 else (1, _one(module.dilation))
        if dilation != (1, 1) or module.return_indices:
            raise UnsupportedLayerError(f"{path} ({kind}) has dilation or returns indices; neither compiles")
    else:
        op = "avg"
        if getattr(module, "divisor_override", None) is not None:
            raise UnsupportedLayerError(f"{path} ({kind}) has a divisor_override, which does not compile")
    h, w = (s.h - k[0]) // st[0] + 1, (s.w - k[1]) // st[1] + 1
    if h < 1 or w < 1:
        raise ConfigError(f"{path} ({kind}) has a kernel larger than its input, {layout.describe()}")
    out = Shape(h, w, s.c)
    return Pool2d(path, s, out, op, k, st), Layout(out, dims, True)


def _one(v) -> int:
    return int(v[0]) if isinstance(v, tuple | list) else int(v)


def fold_batchnorm_conv(bn: nn.Module, path: str, nodes: list[Node], ends: list[int | None], layout: Layout) -> None:
    """Fold a BatchNorm2d (or a BatchNorm1d over a 1-D map) into the convolution ``nodes`` ends with."""
    kind = type(bn).__name__
    if not nodes or not isinstance(nodes[-1], Conv2d) or nodes[-1].relu or nodes[-1].act_max is not None:
        raise UnsupportedLayerError(
            f"{path} ({kind}) cannot be folded: it does not follow a convolution, and the compiler folds a "
            "BatchNorm into the convolution right before it"
        )
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(
            f"{path} ({kind}) cannot be folded: it keeps no running statistics (track_running_stats=False)"
        )
    c = layout.shape.c
    if bn.num_features != c:
        raise ConfigError(f"{path} ({kind}) normalises {bn.num_features} channels but receives {layout.describe()}")
    conv = nodes[-1]
    gamma = _np(bn.weight) if bn.affine else np.ones(c)
    beta = _np(bn.bias) if bn.affine else np.zeros(c)
    scale = gamma / np.sqrt(_np(bn.running_var) + float(bn.eps))
    weight = conv.weight * scale[:, None, None, None]  # output channel o's kernels: zeros stay zero
    bias = (conv.bias - _np(bn.running_mean)) * scale + beta
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise UnsupportedLayerError(f"{path} ({kind}) cannot be folded: its statistics give non-finite weights")
    nodes[-1] = dataclasses.replace(conv, weight=weight, bias=bias)
    _hide_pre_activation(nodes, ends)


def fuse_relu6(path: str, nodes: list[Node], ends: list[int | None]) -> None:
    """ReLU6 becomes the clamp of the convolution before it (``relu``, ``act_max = 6``)."""
    if not nodes or not isinstance(nodes[-1], Conv2d) or nodes[-1].relu or nodes[-1].act_max is not None:
        raise UnsupportedLayerError(
            f"{path} (ReLU6) does not follow a convolution; the device runs ReLU6 only as a convolution's clamp"
        )
    nodes[-1] = dataclasses.replace(nodes[-1], relu=True, act_max=6.0)
    _hide_pre_activation(nodes, ends)


def _hide_pre_activation(nodes: list[Node], ends: list[int | None]) -> None:
    for i, end in enumerate(ends):
        if end == len(nodes):
            ends[i] = None  # this module's output was the convolution's, before the fold


CONV_TYPES = tuple(_CONV_TYPES)
POOL_TYPES = (*_POOL_TYPES, *_GLOBAL_TYPES)
