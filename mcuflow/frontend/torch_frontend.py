"""SplitNet -> float IR. Only what the device kernels implement is accepted."""

from __future__ import annotations

import numpy as np
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.ir.graph import ExitBranch, Graph, Linear, Pad, Relu
from mcuflow.nn.sparse import Pad as TorchPad
from mcuflow.nn.sparse import SparseLinear
from mcuflow.sparsity.patterns import structured_params


class UnsupportedLayerError(ConfigError):
    """A layer the compiler has no kernel for."""


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _convert(module: nn.Module, path: str, width: int) -> tuple[list, int]:
    """IR nodes for one module, and the width after it."""
    if isinstance(module, TorchPad):
        if module.in_features != width:
            raise ConfigError(f"{path} (Pad) expects {module.in_features} inputs but receives {width}")
        return [Pad(path, module.in_features, module.size)], module.size
    if isinstance(module, nn.Flatten | nn.Identity | nn.Dropout):
        return [], width  # inputs are already vectors; dropout is the identity at inference
    if isinstance(module, nn.ReLU):
        return [Relu(path, width)], width
    if isinstance(module, SparseLinear):
        if module.in_features != width:
            raise ConfigError(f"{path} (SparseLinear) expects {module.in_features} inputs but receives {width}")
        cols = module.columns.detach().cpu().numpy().astype(np.int64)
        params = None
        if module.pattern == "structured":
            params = structured_params(module.in_features, module.out_features, module.out_degree, module.seed)
        return [
            Linear(
                path,
                module.in_features,
                module.out_features,
                _np(module.weight),
                cols,
                _np(module.bias),
                pattern=module.pattern,
                params=params,
            )
        ], module.out_features
    if isinstance(module, nn.Linear):
        if module.in_features != width:
            raise ConfigError(f"{path} (Linear) expects {module.in_features} inputs but receives {width}")
        bias = _np(module.bias) if module.bias is not None else np.zeros(module.out_features)
        cols = np.tile(np.arange(module.in_features, dtype=np.int64), (module.out_features, 1))
        return [
            Linear(path, module.in_features, module.out_features, _np(module.weight), cols, bias)
        ], module.out_features
    if isinstance(module, nn.Sequential):
        nodes, w = [], width
        for i, child in enumerate(module):
            more, w = _convert(child, f"{path}.{i}", w)
            nodes += more
        return nodes, w
    raise UnsupportedLayerError(
        f"{path} ({type(module).__name__}) has no device kernel; the head and exits may hold only "
        "Pad, Flatten, Linear, SparseLinear and ReLU"
    )


def graph_from_model(model: nn.Module, model_hash: str, name: str = "model") -> Graph:
    """The head and exits of a SplitNet as a float IR graph."""
    head_mod = getattr(model, "head", None)
    if not isinstance(head_mod, nn.Sequential) or not hasattr(model, "exits"):
        raise ConfigError(f"{type(model).__name__} is not a SplitNet (needs .head, .exits, .exit_points)")
    cfg = getattr(model, "config", None)
    input_len = cfg.input_size or cfg.sizes[0] if cfg is not None else None
    if input_len is None:
        first = head_mod[0]
        input_len = first.in_features
    head: list = []
    position = {0: 0}  # torch head position -> IR head position
    width = input_len
    for i, module in enumerate(head_mod):
        nodes, width = _convert(module, f"head.{i}", width)
        head += nodes
        position[i + 1] = len(head)
    exits = []
    for e, (at, branch) in enumerate(zip(model.exit_points, model.exits, strict=True)):
        w = width
        # the exit reads the width at its attach point
        w = Graph("tmp", input_len, head[: position[at]], [], 0, "").width_after(position[at])
        nodes, out = _convert(branch, f"exits.{e}", w)
        if not any(isinstance(n, Linear) for n in nodes):
            raise ConfigError(f"exits.{e} has no linear layer producing class logits")
        exits.append(ExitBranch(f"exits.{e}", position[at], nodes))
    num_classes = cfg.n_classes if cfg is not None else None
    for e, branch in enumerate(exits):
        out = [n for n in branch.nodes if isinstance(n, Linear)][-1].n_out
        if num_classes is None:
            num_classes = out
        if out != num_classes:
            raise ConfigError(f"exits.{e} gives {out} logits, expected {num_classes} classes")
    if num_classes is None:
        raise ConfigError("the model has no exits and no config giving its number of classes")
    return Graph(name, input_len, head, exits, num_classes, model_hash, source="torch")
