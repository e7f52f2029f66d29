"""A SplitNet's structure as a declarative layer list: what a checkpoint stores beside the state dict.

Each layer is a type name and its hyper-parameters (``LayerSpec``); the tensors stay in the state dict.
A checkpoint holds no pickled code (it is read with ``torch.load(weights_only=True)``), so only the
types of :data:`KINDS` can be captured and rebuilt, matched by exact type: a subclass may override
``forward``, which the layer list could not carry. Anything else is refused by path and type name,
e.g. ``head.2 (Sigmoid)``.

What the compiler then does with each type (fold, lower, refuse) is the front end's business
(:mod:`mcuflow.frontend.torch_frontend`); this module only says what the modules *are*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.nn.conv import SparseConv1d, SparseConv2d
from mcuflow.nn.sparse import Pad, SparseLinear
from mcuflow.nn.split import SplitNet
from mcuflow.sparsity.patterns import pattern_columns


class UnsavableLayerError(ConfigError):
    """A module a checkpoint cannot hold: a type outside :data:`KINDS`, a hook, a non-float32 tensor."""


@dataclass(frozen=True)
class LayerSpec:
    """One module: its type name, its hyper-parameters (JSON values) and, for a Sequential, its children."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    layers: tuple[LayerSpec, ...] = ()

    def label(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{self.type}({args})" if self.type != "Sequential" else f"Sequential of {len(self.layers)}"


@dataclass(frozen=True)
class ExitSpec:
    """An exit branch reading the output of ``head[:at]``."""

    at: int
    branch: LayerSpec


@dataclass(frozen=True)
class ModelStructure:
    """Head and tail (the layers of their ``nn.Sequential``) and the exits, in the SplitNet's order."""

    head: tuple[LayerSpec, ...]
    exits: tuple[ExitSpec, ...]
    tail: tuple[LayerSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "head": [_spec_to_json(s) for s in self.head],
            "exits": [{"at": e.at, "branch": _spec_to_json(e.branch)} for e in self.exits],
            "tail": [_spec_to_json(s) for s in self.tail],
        }

    @classmethod
    def from_json(cls, data: Any) -> ModelStructure:
        """Parse and check a layer list; a ConfigError names the first entry that is wrong."""
        if not isinstance(data, dict) or set(data) != {"head", "exits", "tail"}:
            raise ConfigError("the layer list must be an object with 'head', 'exits' and 'tail'")
        for key in ("head", "exits", "tail"):
            if not isinstance(data[key], list):
                raise ConfigError(f"the layer list's {key!r} must be a list")
        exits = []
        for e, entry in enumerate(data["exits"]):
            if not isinstance(entry, dict) or set(entry) != {"at", "branch"} or not _is_int(entry["at"]):
                raise ConfigError(f"exits.{e} must be an object with an integer 'at' and a 'branch'")
            exits.append(ExitSpec(entry["at"], _spec_from_json(entry["branch"], f"exits.{e}")))
        return cls(
            head=tuple(_spec_from_json(s, f"head.{i}") for i, s in enumerate(data["head"])),
            exits=tuple(exits),
            tail=tuple(_spec_from_json(s, f"tail.{i}") for i, s in enumerate(data["tail"])),
        )

    def entries(self) -> Iterator[tuple[str, LayerSpec]]:
        """Every layer with its path (``head.1``, ``exits.0.2``, ``tail.0``), Sequentials and their children."""
        for i, s in enumerate(self.head):
            yield from _walk(s, f"head.{i}")
        for e, x in enumerate(self.exits):
            yield from _walk(x.branch, f"exits.{e}")
        for i, s in enumerate(self.tail):
            yield from _walk(s, f"tail.{i}")


# ---------------------------------------------------------------- the layer types a checkpoint holds

_INT = (int,)
_BOOL = (bool,)
_STR = (str,)
_FLOAT = (float, int)
_INTS = (list,)  # a list of integers (a kernel size, a stride); checked again when the layer is built
_SIZE = (int, list)  # an integer or a list of them, as torch takes either


@dataclass(frozen=True)
class LayerKind:
    """How one module type becomes a :class:`LayerSpec` and back."""

    cls: type[nn.Module]
    params: dict[str, tuple[type, ...]]  # name -> the JSON types it may take (None where listed)
    capture: Callable[[Any], dict[str, Any]]
    build: Callable[[dict[str, Any]], nn.Module]


def _ints(v: Any) -> list[int | None] | int:
    """A size as JSON: an int stays one, a tuple becomes a list."""
    if isinstance(v, tuple | list):
        return [None if x is None else int(x) for x in v]  # AdaptiveAvgPool2d((1, None)) keeps a size
    return int(v)


def _bn_params(m: nn.Module) -> dict[str, Any]:
    return {
        "num_features": m.num_features,
        "eps": float(m.eps),
        "momentum": None if m.momentum is None else float(m.momentum),
        "affine": m.affine,
        "track_running_stats": m.track_running_stats,
    }


_BN_SCHEMA: dict[str, tuple[type, ...]] = {
    "num_features": _INT,
    "eps": _FLOAT,
    "momentum": (*_FLOAT, type(None)),
    "affine": _BOOL,
    "track_running_stats": _BOOL,
}
_CONV_SCHEMA: dict[str, tuple[type, ...]] = {
    "in_channels": _INT,
    "out_channels": _INT,
    "kernel_size": _INTS,
    "stride": _INTS,
    "padding": (list, str),
    "dilation": _INTS,
    "groups": _INT,
    "bias": _BOOL,
    "padding_mode": _STR,
}
_SPARSE_CONV_SCHEMA: dict[str, tuple[type, ...]] = {
    "in_channels": _INT,
    "out_channels": _INT,
    "kernel_size": _INTS,
    "out_degree": _INT,
    "stride": _INTS,
    "padding": _INTS,
    "seed": _INT,
    "pattern": _STR,
    "tap_period": _INT,
    "tap_keep": _INT,
    "bias": _BOOL,
}


def _conv_params(m: nn.Module) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": _ints(m.kernel_size),
        "stride": _ints(m.stride),
        "padding": m.padding if isinstance(m.padding, str) else _ints(m.padding),
        "dilation": _ints(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    }


def _conv_build(cls: type[nn.Module]) -> Callable[[dict[str, Any]], nn.Module]:
    def build(p: dict[str, Any]) -> nn.Module:
        padding = p["padding"] if isinstance(p["padding"], str) else tuple(p["padding"])
        return cls(
            p["in_channels"],
            p["out_channels"],
            tuple(p["kernel_size"]),
            stride=tuple(p["stride"]),
            padding=padding,
            dilation=tuple(p["dilation"]),
            groups=p["groups"],
            bias=p["bias"],
            padding_mode=p["padding_mode"],
        )

    return build


def _sparse_conv_params(m: Any) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "out_degree": m.out_degree,
        "stride": list(m.stride),
        "padding": list(m.padding),
        "seed": m.seed,
        "pattern": m.pattern,
        "tap_period": m.tap_period,
        "tap_keep": m.tap_keep,
        "bias": m.bias is not None,
    }


def _sparse_conv_build(cls: type[nn.Module]) -> Callable[[dict[str, Any]], nn.Module]:
    def build(p: dict[str, Any]) -> nn.Module:
        return cls(
            p["in_channels"],
            p["out_channels"],
            p["kernel_size"],
            p["out_degree"],
            stride=p["stride"],
            padding=p["padding"],
            seed=p["seed"],
            pattern=p["pattern"],
            tap_period=p["tap_period"],
            tap_keep=p["tap_keep"],
            bias=p["bias"],
        )

    return build


def _pool_params(m: Any, *names: str) -> dict[str, Any]:
    return {
        n: _ints(getattr(m, n)) if n in ("kernel_size", "stride", "padding", "dilation") else getattr(m, n)
        for n in names
    }


# Convolutional layers (issue 14). Sizes are captured as JSON lists (or ints where torch keeps an int, as
# MaxPool2d does) so that a layer list read back compares equal to a fresh capture.
CONV_KINDS: dict[str, LayerKind] = {
    "Conv2d": LayerKind(nn.Conv2d, _CONV_SCHEMA, _conv_params, _conv_build(nn.Conv2d)),
    "Conv1d": LayerKind(nn.Conv1d, _CONV_SCHEMA, _conv_params, _conv_build(nn.Conv1d)),
    "SparseConv2d": LayerKind(SparseConv2d, _SPARSE_CONV_SCHEMA, _sparse_conv_params, _sparse_conv_build(SparseConv2d)),
    "SparseConv1d": LayerKind(SparseConv1d, _SPARSE_CONV_SCHEMA, _sparse_conv_params, _sparse_conv_build(SparseConv1d)),
    "MaxPool2d": LayerKind(
        nn.MaxPool2d,
        {"kernel_size": _SIZE, "stride": _SIZE, "padding": _SIZE, "dilation": _SIZE, "ceil_mode": _BOOL},
        lambda m: _pool_params(m, "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
        lambda p: nn.MaxPool2d(
            _tup(p["kernel_size"]), _tup(p["stride"]), _tup(p["padding"]), _tup(p["dilation"]), ceil_mode=p["ceil_mode"]
        ),
    ),
    "MaxPool1d": LayerKind(
        nn.MaxPool1d,
        {"kernel_size": _SIZE, "stride": _SIZE, "padding": _SIZE, "dilation": _SIZE, "ceil_mode": _BOOL},
        lambda m: _pool_params(m, "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
        lambda p: nn.MaxPool1d(
            _tup(p["kernel_size"]), _tup(p["stride"]), _tup(p["padding"]), _tup(p["dilation"]), ceil_mode=p["ceil_mode"]
        ),
    ),
    "AvgPool2d": LayerKind(
        nn.AvgPool2d,
        {
            "kernel_size": _SIZE,
            "stride": _SIZE,
            "padding": _SIZE,
            "ceil_mode": _BOOL,
            "count_include_pad": _BOOL,
            "divisor_override": (int, type(None)),
        },
        lambda m: _pool_params(
            m, "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"
        ),
        lambda p: nn.AvgPool2d(
            _tup(p["kernel_size"]),
            _tup(p["stride"]),
            _tup(p["padding"]),
            p["ceil_mode"],
            p["count_include_pad"],
            p["divisor_override"],
        ),
    ),
    "AvgPool1d": LayerKind(
        nn.AvgPool1d,
        {"kernel_size": _SIZE, "stride": _SIZE, "padding": _SIZE, "ceil_mode": _BOOL, "count_include_pad": _BOOL},
        lambda m: _pool_params(m, "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
        lambda p: nn.AvgPool1d(
            _tup(p["kernel_size"]), _tup(p["stride"]), _tup(p["padding"]), p["ceil_mode"], p["count_include_pad"]
        ),
    ),
    "AdaptiveAvgPool2d": LayerKind(
        nn.AdaptiveAvgPool2d,
        {"output_size": (int, list)},
        lambda m: {"output_size": _ints(m.output_size)},
        lambda p: nn.AdaptiveAvgPool2d(_tup(p["output_size"])),
    ),
    "AdaptiveAvgPool1d": LayerKind(
        nn.AdaptiveAvgPool1d,
        {"output_size": (int, list)},
        lambda m: {"output_size": _ints(m.output_size)},
        lambda p: nn.AdaptiveAvgPool1d(_tup(p["output_size"])),
    ),
    "BatchNorm2d": LayerKind(
        nn.BatchNorm2d,
        _BN_SCHEMA,
        _bn_params,
        lambda p: nn.BatchNorm2d(p["num_features"], p["eps"], p["momentum"], p["affine"], p["track_running_stats"]),
    ),
    "ReLU6": LayerKind(
        nn.ReLU6, {"inplace": _BOOL}, lambda m: {"inplace": m.inplace}, lambda p: nn.ReLU6(p["inplace"])
    ),
    # Unflatten gives a conv model's flat inputs (what mcuflow feeds every model: MNIST as 784 values)
    # their (C, H, W) or (C, L) shape; as the head's first layer it records the model's input shape.
    "Unflatten": LayerKind(
        nn.Unflatten,
        {"dim": _INT, "unflattened_size": _INTS},
        lambda m: {"dim": int(m.dim), "unflattened_size": [int(v) for v in m.unflattened_size]},
        lambda p: nn.Unflatten(p["dim"], tuple(p["unflattened_size"])),
    ),
}


def _tup(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


KINDS: dict[str, LayerKind] = {
    "SparseLinear": LayerKind(
        SparseLinear,
        {"in_features": _INT, "out_features": _INT, "out_degree": _INT, "seed": _INT, "pattern": _STR},
        lambda m: {
            "in_features": m.in_features,
            "out_features": m.out_features,
            "out_degree": m.out_degree,
            "seed": m.seed,
            "pattern": m.pattern,
        },
        lambda p: SparseLinear(
            p["in_features"], p["out_features"], p["out_degree"], seed=p["seed"], pattern=p["pattern"]
        ),
    ),
    "Linear": LayerKind(
        nn.Linear,
        {"in_features": _INT, "out_features": _INT, "bias": _BOOL},
        lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None},
        lambda p: nn.Linear(p["in_features"], p["out_features"], bias=p["bias"]),
    ),
    "ReLU": LayerKind(nn.ReLU, {"inplace": _BOOL}, lambda m: {"inplace": m.inplace}, lambda p: nn.ReLU(p["inplace"])),
    "Flatten": LayerKind(
        nn.Flatten,
        {"start_dim": _INT, "end_dim": _INT},
        lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim},
        lambda p: nn.Flatten(p["start_dim"], p["end_dim"]),
    ),
    "Identity": LayerKind(nn.Identity, {}, lambda m: {}, lambda p: nn.Identity()),
    "Dropout": LayerKind(
        nn.Dropout,
        {"p": _FLOAT, "inplace": _BOOL},
        lambda m: {"p": float(m.p), "inplace": m.inplace},
        lambda p: nn.Dropout(p["p"], p["inplace"]),
    ),
    "BatchNorm1d": LayerKind(
        nn.BatchNorm1d,
        {
            "num_features": _INT,
            "eps": _FLOAT,
            "momentum": (*_FLOAT, type(None)),
            "affine": _BOOL,
            "track_running_stats": _BOOL,
        },
        lambda m: {
            "num_features": m.num_features,
            "eps": float(m.eps),
            "momentum": None if m.momentum is None else float(m.momentum),
            "affine": m.affine,
            "track_running_stats": m.track_running_stats,
        },
        lambda p: nn.BatchNorm1d(p["num_features"], p["eps"], p["momentum"], p["affine"], p["track_running_stats"]),
    ),
    **CONV_KINDS,
    "Pad": LayerKind(
        Pad,
        {"in_features": _INT, "size": _INT},
        lambda m: {"in_features": m.in_features, "size": m.size},
        lambda p: Pad(p["in_features"], p["size"]),
    ),
}
_NAME_OF = {kind.cls: name for name, kind in KINDS.items()}
KNOWN = ", ".join([*KINDS, "Sequential"])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to a layer list
        return bool in types
    return isinstance(value, types)


# ---------------------------------------------------------------- modules -> layer list


def capture(model: SplitNet) -> ModelStructure:
    """The layer list of ``model``'s actual modules; refuses, by path and type, what it cannot hold."""
    if not isinstance(model, SplitNet):
        raise UnsavableLayerError(f"{type(model).__name__} is not a SplitNet (build one from head, exits and tail)")
    _no_hooks(model, "the model")
    for part in ("head", "tail"):
        seq = getattr(model, part)
        if type(seq) is not nn.Sequential:
            raise UnsavableLayerError(f"{part} ({type(seq).__name__}) must be an nn.Sequential")
        _no_hooks(seq, part)
    if type(model.exits) is not nn.ModuleList:
        raise UnsavableLayerError(f"exits ({type(model.exits).__name__}) must be the SplitNet's own ModuleList")
    return ModelStructure(
        head=tuple(capture_layer(m, f"head.{i}") for i, m in enumerate(model.head)),
        exits=tuple(
            ExitSpec(at, capture_layer(b, f"exits.{e}"))
            for e, (at, b) in enumerate(zip(model.exit_points, model.exits, strict=True))
        ),
        tail=tuple(capture_layer(m, f"tail.{i}") for i, m in enumerate(model.tail)),
    )


def capture_layer(module: nn.Module, path: str) -> LayerSpec:
    _no_hooks(module, path)
    if type(module) is nn.Sequential:
        return LayerSpec("Sequential", {}, tuple(capture_layer(m, f"{path}.{i}") for i, m in enumerate(module)))
    name = _NAME_OF.get(type(module))
    if name is None:
        raise UnsavableLayerError(
            f"{path} ({type(module).__name__}) is not a layer type mcuflow supports; a checkpoint holds only {KNOWN}"
        )
    for tname, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
        if t is not None and t.is_floating_point() and t.dtype != torch.float32:
            raise UnsavableLayerError(
                f"{path} ({name}) holds {str(t.dtype).removeprefix('torch.')} {tname}; mcuflow models are "
                "float32 (call model.float())"
            )
    if isinstance(module, SparseLinear):
        # The pattern is stored as the parameters that regenerate it (the device regenerates a closed-form
        # one too), so columns edited after construction would be lost: refuse them.
        expected = pattern_columns(
            module.pattern, module.in_features, module.out_features, module.out_degree, module.seed
        )
        if not np.array_equal(module.columns.detach().cpu().numpy(), expected):
            raise UnsavableLayerError(
                f"{path} (SparseLinear) has columns that are not the {module.pattern} pattern of seed {module.seed}; "
                "a checkpoint regenerates patterns from (pattern, seed)"
            )
    if isinstance(module, SparseConv1d | SparseConv2d):
        rebuilt = KINDS[name].build(KINDS[name].capture(module))
        for buffer in ("channels", "tap_mask"):
            if not torch.equal(getattr(module, buffer).detach().cpu(), getattr(rebuilt, buffer)):
                raise UnsavableLayerError(
                    f"{path} ({name}) has {buffer} that are not the {module.pattern} pattern of seed {module.seed}; "
                    "a checkpoint regenerates patterns from (pattern, seed, tap_period, tap_keep)"
                )
    return LayerSpec(name, KINDS[name].capture(module))


def _no_hooks(module: nn.Module, path: str) -> None:
    # A hook changes what a module computes without being part of it; the layer list cannot carry it.
    if module._forward_hooks or module._forward_pre_hooks:
        raise UnsavableLayerError(
            f"{path} ({type(module).__name__}) has a forward hook, which a checkpoint cannot hold "
            "(training BatchNorms? call FoldableNorms.fold() before saving)"
        )


# ---------------------------------------------------------------- layer list -> modules


def rebuild(structure: ModelStructure) -> SplitNet:
    """A SplitNet of fresh modules with ``structure``'s types and hyper-parameters; their initial weights
    are drawn as usual, for the caller to replace with the state dict."""
    head = nn.Sequential(*(build_layer(s, f"head.{i}") for i, s in enumerate(structure.head)))
    tail = nn.Sequential(*(build_layer(s, f"tail.{i}") for i, s in enumerate(structure.tail)))
    exits = [(x.at, build_layer(x.branch, f"exits.{e}")) for e, x in enumerate(structure.exits)]
    try:
        return SplitNet(head, exits, tail)
    except ValueError as err:
        raise ConfigError(f"the layer list does not form a SplitNet: {err}") from None


def build_layer(spec: LayerSpec, path: str) -> nn.Module:
    if spec.type == "Sequential":
        return nn.Sequential(*(build_layer(s, f"{path}.{i}") for i, s in enumerate(spec.layers)))
    try:
        return KINDS[spec.type].build(spec.params)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{path} ({spec.type}) cannot be built from {spec.label()}: {err}") from None


# ---------------------------------------------------------------- JSON


def _spec_to_json(spec: LayerSpec) -> dict[str, Any]:
    if spec.type == "Sequential":
        return {"type": "Sequential", "layers": [_spec_to_json(s) for s in spec.layers]}
    return {"type": spec.type, "params": dict(spec.params)}


def _spec_from_json(data: Any, path: str) -> LayerSpec:
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ConfigError(f"{path} must be an object with a 'type'")
    kind = data["type"]
    if kind == "Sequential":
        if set(data) != {"type", "layers"} or not isinstance(data["layers"], list):
            raise ConfigError(f"{path} (Sequential) must hold 'layers', a list")
        return LayerSpec(
            "Sequential", {}, tuple(_spec_from_json(s, f"{path}.{i}") for i, s in enumerate(data["layers"]))
        )
    if kind not in KINDS:
        raise ConfigError(f"{path} has unknown layer type {kind!r}; a checkpoint holds {KNOWN}")
    params = data.get("params")
    if set(data) != {"type", "params"} or not isinstance(params, dict):
        raise ConfigError(f"{path} ({kind}) must hold 'params', an object")
    schema = KINDS[kind].params
    if set(params) != set(schema):
        missing, extra = sorted(set(schema) - set(params)), sorted(set(params) - set(schema))
        raise ConfigError(f"{path} ({kind}) parameters: missing {missing or 'none'}, unknown {extra or 'none'}")
    for name, types in schema.items():
        if not _type_ok(params[name], types):
            raise ConfigError(f"{path} ({kind}) parameter {name}={params[name]!r} has the wrong type")
    return LayerSpec(kind, dict(params))


def _walk(spec: LayerSpec, path: str) -> Iterator[tuple[str, LayerSpec]]:
    yield path, spec
    for i, child in enumerate(spec.layers):
        yield from _walk(child, f"{path}.{i}")


# ---------------------------------------------------------------- questions about a structure


def first_difference(a: ModelStructure, b: ModelStructure) -> str | None:
    """Where two layer lists first differ, as ``path: X vs Y``; None when they are the same."""
    ea, eb = list(a.entries()), list(b.entries())
    for (pa, sa), (pb, sb) in zip(ea, eb, strict=False):
        if pa != pb:
            return f"{pa}: {sa.label()} vs {pb}: {sb.label()}"
        if (sa.type, sa.params, len(sa.layers)) != (sb.type, sb.params, len(sb.layers)):
            return f"{pa}: {sa.label()} vs {sb.label()}"
    if len(ea) != len(eb):
        longer, name = (ea, "first") if len(ea) > len(eb) else (eb, "second")
        path, spec = longer[min(len(ea), len(eb))]
        return f"{path}: {spec.label()} only in the {name}"
    for e, (xa, xb) in enumerate(zip(a.exits, b.exits, strict=True)):
        if xa.at != xb.at:
            return f"exits.{e}: attached at head position {xa.at} vs {xb.at}"
    return None


_WIDTH_OF = {
    "Pad": "in_features",
    "Linear": "in_features",
    "SparseLinear": "in_features",
    "BatchNorm1d": "num_features",
}
_PASS_THROUGH = {"Flatten", "Identity", "Dropout", "ReLU"}


def input_features(structure: ModelStructure) -> int | None:
    """The width of the head's input: that of its first layer with one, past layers that keep it; None when
    a layer that changes its input's shape in an unknown way comes first."""
    head = (entry for i, s in enumerate(structure.head) for entry in _walk(s, f"head.{i}"))
    for _, spec in head:
        if spec.type == "Unflatten":  # a conv model's flat input, shaped by its first layer
            return math.prod(int(v) for v in spec.params["unflattened_size"])
        if spec.type in _WIDTH_OF:
            return int(spec.params[_WIDTH_OF[spec.type]])
        if spec.type != "Sequential" and spec.type not in _PASS_THROUGH:
            return None
    return None
