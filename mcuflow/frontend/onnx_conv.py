"""ONNX convolutional nodes -> float IR: Conv, MaxPool, AveragePool, GlobalAveragePool, and the
BatchNormalization and Clip (ReLU6) folded into the Conv before them. ONNX is NCHW like torch; the
rules are those of :mod:`mcuflow.frontend.torch_conv` (docs/cnn.md): padding with zeros only, pooling
without padding, dilation 1, a Conv1d as the IR's ``h == 1``."""

from __future__ import annotations

import dataclasses

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.frontend.layout import Layout
from mcuflow.ir.graph import Conv2d, Node, Pool2d, Relu, Shape


def _attr(node, name: str, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _spatial(values, dims: int) -> tuple[int, int]:
    values = [int(v) for v in values]
    return (1, values[0]) if dims == 1 else (values[0], values[1])


def _no_auto_pad(node, label: str, path) -> None:
    auto = _attr(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise ConfigError(f"{path}: {label} ({node.op_type}) has auto_pad={auto}; give explicit pads")


def lower_node(node, label: str, layout: Layout, inits: dict, out: list[Node], path) -> Layout:
    """Append (or fold into ``out[-1]``) the IR of one conv-family node; the layout after it."""
    op = node.op_type
    if op == "Clip":
        return _clip(node, label, layout, inits, out, path)
    if not layout.dims:
        raise ConfigError(f"{path}: {label} ({op}) needs a feature map, but its input is a vector of {layout.width}")
    dims, s = layout.dims, layout.shape
    if op == "BatchNormalization":
        _fold_batchnorm(node, label, layout, inits, out, path)
        return layout
    if op == "GlobalAveragePool":
        shape = Shape(1, 1, s.c)
        out.append(Pool2d(label, s, shape, "avg", (s.h, s.w), (s.h, s.w)))
        return Layout(shape, dims, True)
    _no_auto_pad(node, label, path)
    if op == "Conv":
        return _conv(node, label, layout, inits, out, path)
    kernel = _spatial(_attr(node, "kernel_shape", None), dims)
    stride = _spatial(_attr(node, "strides", [1] * dims), dims)
    pads = [int(v) for v in _attr(node, "pads", [0] * 2 * dims)]
    if any(pads) or _attr(node, "ceil_mode", 0) or any(int(d) != 1 for d in _attr(node, "dilations", [1] * dims)):
        raise ConfigError(
            f"{path}: {label} ({op}) has pads {pads}, ceil_mode or dilations; the device pools without padding, "
            "rounding down"
        )
    if op == "MaxPool" and len([o for o in node.output if o]) > 1:
        raise ConfigError(f"{path}: {label} (MaxPool) returns indices, which do not compile")
    h, w = (s.h - kernel[0]) // stride[0] + 1, (s.w - kernel[1]) // stride[1] + 1
    if h < 1 or w < 1:
        raise ConfigError(f"{path}: {label} ({op}) has a kernel larger than its input {s}")
    shape = Shape(h, w, s.c)
    out.append(Pool2d(label, s, shape, "max" if op == "MaxPool" else "avg", kernel, stride))
    return Layout(shape, dims, True)


def _conv(node, label: str, layout: Layout, inits: dict, out: list[Node], path) -> Layout:
    dims, s = layout.dims, layout.shape
    if node.input[1] not in inits or (len(node.input) > 2 and node.input[2] and node.input[2] not in inits):
        raise ConfigError(f"{path}: {label} (Conv) needs initializer weights")
    w = inits[node.input[1]]  # (c_out, c_in / group, *k)
    if w.ndim != dims + 2:
        raise ConfigError(f"{path}: {label} (Conv) has {w.ndim - 2}-D kernels on a {dims}-D feature map")
    c_out, per_group_in = w.shape[:2]
    group = int(_attr(node, "group", 1))
    if per_group_in * group != s.c or c_out % group:
        raise ConfigError(f"{path}: {label} (Conv) expects {per_group_in * group} channels but receives {s.c}")
    if any(int(d) != 1 for d in _attr(node, "dilations", [1] * dims)):
        raise ConfigError(f"{path}: {label} (Conv) has dilations; only dilation 1 compiles")
    stride = _spatial(_attr(node, "strides", [1] * dims), dims)
    pads = [int(v) for v in _attr(node, "pads", [0] * 2 * dims)]  # begin..., end...
    padding = (0, pads[0], 0, pads[1]) if dims == 1 else (pads[0], pads[1], pads[2], pads[3])
    if dims == 1:
        w = w[:, :, None, :]
    kh, kw = w.shape[2:]
    h = (s.h + padding[0] + padding[2] - kh) // stride[0] + 1
    wd = (s.w + padding[1] + padding[3] - kw) // stride[1] + 1
    if h < 1 or wd < 1:
        raise ConfigError(f"{path}: {label} (Conv) has a kernel larger than its input {s}")
    per_group_out = c_out // group
    channels = (np.arange(c_out) // per_group_out)[:, None] * per_group_in + np.arange(per_group_in)[None, :]
    pattern = "dense" if group == 1 else "depthwise" if group == s.c else "explicit"
    bias = inits[node.input[2]].reshape(-1) if len(node.input) > 2 and node.input[2] else np.zeros(c_out)
    shape = Shape(h, wd, c_out)
    out.append(Conv2d(label, s, shape, (kh, kw), stride, padding, np.ascontiguousarray(w.transpose(0, 2, 3, 1)),
                      channels.astype(np.int64), bias.astype(np.float64), pattern=pattern))  # fmt: skip
    return Layout(shape, dims, True)


def _foldable(out: list[Node], label: str, op: str, path) -> Conv2d:
    if not out or not isinstance(out[-1], Conv2d) or out[-1].relu or out[-1].act_max is not None:
        raise ConfigError(
            f"{path}: {label} ({op}) does not follow a Conv; the compiler folds it into the Conv right before it"
        )
    return out[-1]


def _fold_batchnorm(node, label: str, layout: Layout, inits: dict, out: list[Node], path) -> None:
    conv = _foldable(out, label, "BatchNormalization", path)
    names = node.input[1:5]
    if len(names) != 4 or any(n not in inits for n in names):
        raise ConfigError(f"{path}: {label} (BatchNormalization) needs initializer scale, bias, mean and variance")
    gamma, beta, mean, var = (inits[n].reshape(-1) for n in names)
    if len(gamma) != layout.shape.c:
        raise ConfigError(
            f"{path}: {label} (BatchNormalization) normalises {len(gamma)} channels, not {layout.shape.c}"
        )
    scale = gamma / np.sqrt(var + float(_attr(node, "epsilon", 1e-5)))
    out[-1] = dataclasses.replace(conv, weight=conv.weight * scale[:, None, None, None],
                                  bias=(conv.bias - mean) * scale + beta)  # fmt: skip


def _clip(node, label: str, layout: Layout, inits: dict, out: list[Node], path) -> Layout:
    lo, hi = _attr(node, "min", None), _attr(node, "max", None)  # opset < 11: attributes
    for k, name in ((1, "min"), (2, "max")):  # opset >= 11: optional initializer inputs
        if len(node.input) > k and node.input[k]:
            if node.input[k] not in inits:
                raise ConfigError(f"{path}: {label} (Clip) needs a constant {name}")
            value = float(inits[node.input[k]].reshape(-1)[0])
            lo, hi = (value, hi) if name == "min" else (lo, value)
    if lo == 0.0 and hi is None:
        out.append(Relu(label, layout.width))  # Clip(0, inf) is a ReLU
        return layout
    if lo != 0.0 or hi != 6.0:
        raise ConfigError(f"{path}: {label} (Clip) to [{lo}, {hi}] does not compile; only [0, 6] (ReLU6) does")
    conv = _foldable(out, label, "Clip", path)
    out[-1] = dataclasses.replace(conv, relu=True, act_max=6.0)
    return layout
