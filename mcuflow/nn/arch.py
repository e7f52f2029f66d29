"""Declared architectures for convolutional split models (``mcuflow train --preset`` / ``--arch FILE``).

An architecture is a JSON (or TOML) object::

    {"name": "b-lenet", "input": [1, 28, 28], "classes": 10,
     "head":  [{"type": "conv", "out": 8, "kernel": 5}, "relu", {"type": "maxpool", "kernel": 2}, ...],
     "exits": [{"at": 6, "layers": [{"type": "avgpool", "kernel": 4}, "flatten", {"type": "linear", "out": 10}]}],
     "tail":  ["flatten", {"type": "linear", "out": 128}, "relu", {"type": "linear", "out": 10}]}

``input`` is ``[C, H, W]`` (or ``[C, L]`` for 1-D models): the head starts with an ``nn.Unflatten`` that
shapes mcuflow's flat inputs (MNIST: 784 values) into it, and that layer is how a checkpoint records
the input shape. Each layer is a name or an object with a ``type``; widths are inferred from the shape
before it:

* ``conv``: ``out``, ``kernel``, ``stride`` (1), ``padding`` (0), ``in_degree`` (the input channels each
  output reads; below ``C_in`` a :class:`~mcuflow.nn.conv.SparseConv2d` with the closed-form
  ``pattern`` (``structured``) of ``seed`` (0), else a dense ``nn.Conv2d``), ``taps`` ``[P, keep]``
  (the pSConv tap mask, sparse convs only), ``depthwise`` (``groups = C_in``);
* ``batchnorm``, ``relu``, ``relu6``, ``dropout`` (``p``), ``flatten``;
* ``maxpool`` / ``avgpool``: ``kernel``, ``stride`` (= ``kernel``); ``gap``: global average pooling;
* ``linear``: ``out``; with ``out_degree`` a :class:`~mcuflow.nn.sparse.SparseLinear`.

``at`` counts head layers as :class:`~mcuflow.nn.split.SplitNet` does, the Unflatten included (``at: 1``
reads the shaped input). The presets are :data:`PRESETS`.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.nn.conv import SparseConv1d, SparseConv2d
from mcuflow.nn.sparse import SparseLinear
from mcuflow.nn.split import SplitNet

# B-LeNet (BranchyNet, Teerapittayanon et al.) sized for an MCU head: two conv blocks on the device, the
# second channel-sparse in the sparse preset, and one exit at the head output. The exit is small on purpose:
# it is the same in both presets, so a heavy one (BranchyNet's branch has a conv and a 640->10 layer) would
# cap the head's dense/sparse weight ratio far below 3x. A global max pool keeps what each of the 32 feature
# detectors found anywhere, and a 16-wide hidden layer makes it a nonlinear classifier: 97.7% alone,
# against 94.2% for global average pooling into one linear layer (sparse preset, 8-10 epochs, measured).
# Channels 1 -> 16 -> 32: the second conv holds most of the head's weights, and in-degree 4 of 16 (each
# input channel feeds 8 outputs) makes the sparse head 3.25x smaller than the dense one.
_B_LENET: dict[str, Any] = {
    "name": "b-lenet",
    "input": [1, 28, 28],
    "classes": 10,
    "head": [
        {"type": "conv", "out": 16, "kernel": 5},
        "relu",
        {"type": "maxpool", "kernel": 2},
        {"type": "conv", "out": 32, "kernel": 5},
        "relu",
        {"type": "maxpool", "kernel": 2},
    ],
    "exits": [
        {
            "at": 7,
            "layers": [{"type": "maxpool", "kernel": 4}, "flatten", {"type": "linear", "out": 16}, "relu",
                       {"type": "linear", "out": 10}],
        }
    ],
    "tail": ["flatten", {"type": "linear", "out": 128}, "relu", {"type": "linear", "out": 10}],
}  # fmt: skip
_B_LENET_SPARSE = copy.deepcopy(_B_LENET)
_B_LENET_SPARSE["name"] = "b-lenet-sparse"
_B_LENET_SPARSE["head"][3] = {"type": "conv", "out": 32, "kernel": 5, "in_degree": 4}

PRESETS: dict[str, dict[str, Any]] = {"b-lenet": _B_LENET, "b-lenet-sparse": _B_LENET_SPARSE}
_KNOWN = ("conv", "batchnorm", "relu", "relu6", "dropout", "flatten", "maxpool", "avgpool", "gap", "linear")
_TOP = {"name", "input", "classes", "head", "exits", "tail"}


@dataclass
class Arch:
    """A checked architecture: its JSON form (recorded in the checkpoint's meta) and its input shape."""

    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", "arch"))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["input"])

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def classes(self) -> int:
        return int(self.spec["classes"])


def load_arch(preset: str | None, path: str | Path | None) -> Arch:
    """The preset or the file's architecture, checked (a ConfigError names the first problem)."""
    if (preset is None) == (path is None):
        raise ConfigError("give --preset or --arch, not both")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        spec = copy.deepcopy(PRESETS[preset])
    else:
        p = Path(path)  # type: ignore[arg-type]
        if not p.is_file():
            raise ConfigError(f"architecture file {p} does not exist")
        try:
            text = p.read_text()
            spec = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"architecture file {p} is not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: "
                              f"{str(err).splitlines()[0]}") from None  # fmt: skip
    arch = Arch(spec)
    build_arch(arch)  # every shape and degree checked before any data is read
    return arch


def build_arch(arch: Arch) -> SplitNet:
    """The SplitNet ``arch`` declares (fresh initial weights from torch's global generator)."""
    spec = arch.spec
    if not isinstance(spec, dict) or not {"input", "classes", "head", "tail"} <= set(spec) or set(spec) - _TOP:
        raise ConfigError(f"an architecture is an object with input, classes, head, tail (and exits, name); got "
                          f"{sorted(spec) if isinstance(spec, dict) else type(spec).__name__}")  # fmt: skip
    shape = spec["input"]
    if not isinstance(shape, list) or len(shape) not in (2, 3) or not all(_pos(v) for v in shape):
        raise ConfigError(f"input must be [C, H, W] or [C, L] of positive integers, got {shape!r}")
    if not _pos(spec["classes"]):
        raise ConfigError(f"classes must be a positive integer, got {spec['classes']!r}")
    head: list[nn.Module] = [nn.Unflatten(1, tuple(shape))]
    shapes = [tuple(shape)]  # the shape after each head layer, head[0] the Unflatten
    for i, layer in enumerate(_list(spec, "head")):
        module, out = _layer(layer, shapes[-1], f"head.{i + 1}")
        head.append(module)
        shapes.append(out)
    tail, tail_out = _chain(_list(spec, "tail"), shapes[-1], "tail")
    if tail and tail_out != (spec["classes"],):
        raise ConfigError(f"the tail gives {_fmt(tail_out)} values, expected {spec['classes']} classes")
    exits = []
    for e, entry in enumerate(spec.get("exits", [])):
        if not isinstance(entry, dict) or set(entry) != {"at", "layers"} or not _pos(entry["at"]):
            raise ConfigError(f"exits.{e} must be an object with a positive integer 'at' and 'layers'")
        at = entry["at"]
        if not 1 <= at <= len(head):
            raise ConfigError(f"exits.{e} at {at}: the head has {len(head)} layers (the Unflatten is 1)")
        branch, out = _chain(_list(entry, "layers"), shapes[at - 1], f"exits.{e}")
        if out != (spec["classes"],):
            raise ConfigError(f"exits.{e} gives {_fmt(out)} values, expected {spec['classes']} classes")
        exits.append((at, branch))
    if not tail and not exits and shapes[-1] != (spec["classes"],):
        raise ConfigError("the tail is empty, so the head's output must be the class logits")
    return SplitNet(nn.Sequential(*head), exits, tail)


def _chain(layers: list, shape: tuple[int, ...], path: str) -> tuple[nn.Sequential, tuple[int, ...]]:
    modules = []
    for i, layer in enumerate(layers):
        module, shape = _layer(layer, shape, f"{path}.{i}")
        modules.append(module)
    return nn.Sequential(*modules), shape


def _list(spec: dict, key: str) -> list:
    value = spec.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"the architecture's {key!r} must be a list of layers")
    return value


def _pos(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _get(layer: dict, key: str, default: Any, path: str, kind: str, minimum: int = 1) -> Any:
    value = layer.get(key, default)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not ok:
        raise ConfigError(f"{path} ({kind}) {key} must be an integer of at least {minimum}, got {value!r}")
    return value


_KEYS = {
    "conv": {"out", "kernel", "stride", "padding", "in_degree", "pattern", "seed", "taps", "depthwise"},
    "maxpool": {"kernel", "stride"},
    "avgpool": {"kernel", "stride"},
    "linear": {"out", "out_degree", "pattern", "seed"},
    "dropout": {"p"},
}


def _layer(layer: Any, shape: tuple[int, ...], path: str) -> tuple[nn.Module, tuple[int, ...]]:
    """One declared layer as a module, and the shape after it (``(C, H, W)``, ``(C, L)`` or ``(n,)``)."""
    if isinstance(layer, str):
        layer = {"type": layer}
    if not isinstance(layer, dict) or not isinstance(layer.get("type"), str):
        raise ConfigError(f"{path} must be a layer name or an object with a 'type'")
    kind = layer["type"]
    if kind not in _KNOWN:
        raise ConfigError(f"{path} has unknown layer type {kind!r}; choose one of {', '.join(_KNOWN)}")
    extra = set(layer) - {"type"} - _KEYS.get(kind, set())
    if extra:
        raise ConfigError(f"{path} ({kind}) has unknown keys {sorted(extra)}; it takes {sorted(_KEYS.get(kind, []))}")
    spatial = len(shape) > 1
    if kind in ("conv", "batchnorm", "maxpool", "avgpool", "gap") and not spatial:
        raise ConfigError(f"{path} ({kind}) needs a feature map, but its input is a vector of {shape[0]}")
    if kind == "linear" and spatial:
        raise ConfigError(f"{path} (linear) reads a vector; put a flatten before it (its input is {_fmt(shape)})")
    dims = len(shape) - 1
    try:
        if kind == "conv":
            return _conv(layer, shape, path)
        if kind == "batchnorm":
            return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(shape[0]), shape
        if kind in ("relu", "relu6"):
            return (nn.ReLU() if kind == "relu" else nn.ReLU6()), shape
        if kind == "dropout":
            p = layer.get("p", 0.5)
            if not isinstance(p, int | float) or not 0 <= p < 1:
                raise ConfigError(f"{path} (dropout) p must be in [0, 1), got {p!r}")
            return nn.Dropout(float(p)), shape
        if kind == "flatten":
            return nn.Flatten(), (math.prod(shape),)
        if kind in ("maxpool", "avgpool"):
            k = _get(layer, "kernel", None, path, kind)
            s = _get(layer, "stride", k, path, kind)
            out = tuple((n - k) // s + 1 for n in shape[1:])
            if min(out) < 1:
                raise ConfigError(f"{path} ({kind}) kernel {k} is larger than its input {_fmt(shape)}")
            cls = {("maxpool", 2): nn.MaxPool2d, ("maxpool", 1): nn.MaxPool1d,
                   ("avgpool", 2): nn.AvgPool2d, ("avgpool", 1): nn.AvgPool1d}[kind, dims]  # fmt: skip
            return cls(k, s), (shape[0], *out)
        if kind == "gap":
            return (nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)), (shape[0], *([1] * dims))
        out = _get(layer, "out", None, path, kind)
        if "out_degree" in layer:
            d = _get(layer, "out_degree", None, path, kind)
            return SparseLinear(
                shape[0],
                out,
                d,
                seed=_get(layer, "seed", 0, path, kind, minimum=0),
                pattern=layer.get("pattern", "structured"),
            ), (out,)
        return nn.Linear(shape[0], out), (out,)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:  # a layer's own check (a degree that is no whole number, a seed)
        raise ConfigError(f"{path} ({kind}): {err}") from None


def _conv(layer: dict, shape: tuple[int, ...], path: str) -> tuple[nn.Module, tuple[int, ...]]:
    c_in, dims = shape[0], len(shape) - 1
    out = _get(layer, "out", None, path, "conv")
    k = _get(layer, "kernel", None, path, "conv")
    stride = _get(layer, "stride", 1, path, "conv")
    padding = _get(layer, "padding", 0, path, "conv", minimum=0)
    d_in = _get(layer, "in_degree", c_in, path, "conv")
    size = tuple((n + 2 * padding - k) // stride + 1 for n in shape[1:])
    if min(size) < 1:
        raise ConfigError(f"{path} (conv) kernel {k} is larger than its input {_fmt(shape)} (padding {padding})")
    taps = layer.get("taps")
    if layer.get("depthwise", False):
        if d_in != c_in or taps is not None:
            raise ConfigError(f"{path} (conv) depthwise takes no in_degree or taps")
        if out % c_in:
            raise ConfigError(f"{path} (conv) depthwise needs out ({out}) a multiple of its {c_in} input channels")
        cls = nn.Conv2d if dims == 2 else nn.Conv1d
        return cls(c_in, out, k, stride, padding, groups=c_in), (out, *size)
    if d_in > c_in:
        raise ConfigError(f"{path} (conv) in_degree {d_in} exceeds its {c_in} input channels")
    if d_in == c_in and taps is None:
        cls = nn.Conv2d if dims == 2 else nn.Conv1d
        return cls(c_in, out, k, stride, padding), (out, *size)
    if (out * d_in) % c_in:
        raise ConfigError(
            f"{path} (conv) in_degree {d_in}: {out} outputs x {d_in} / {c_in} inputs is not a whole out-degree; "
            f"choose in_degree so that {out} * in_degree is a multiple of {c_in}"
        )
    period, keep = 0, 0
    if taps is not None:
        if not (isinstance(taps, list) and len(taps) == 2 and all(_pos(v) for v in taps)):
            raise ConfigError(f"{path} (conv) taps must be [period, keep], got {taps!r}")
        period, keep = taps
    cls = SparseConv2d if dims == 2 else SparseConv1d
    seed = _get(layer, "seed", 0, path, "conv", minimum=0)
    module = cls(c_in, out, k, out * d_in // c_in, stride=stride, padding=padding, seed=seed,
                 pattern=layer.get("pattern", "structured"), tap_period=period, tap_keep=keep)  # fmt: skip
    return module, (out, *size)
