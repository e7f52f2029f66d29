"""SplitNet -> float IR. Only what the device kernels implement reaches the IR.

The torch layers with no kernel of their own are lowered here, so that the passes see the same IR
of Pad, Linear and ReLU nodes as ever:

* ``Flatten(1, -1)``, ``Identity``, ``Dropout``: no node (inputs are vectors; dropout is the identity
  at inference);
* ``BatchNorm1d``: folded into the linear layer right before it, as it computes at inference from its
  running statistics (``s = gamma / sqrt(var + eps)`` scales the rows, the bias becomes
  ``(b - mean) * s + beta``); a BatchNorm that cannot be folded so is refused by name;
* a model whose tail is empty runs whole on the device: its head output is the class logits, read by
  one more exit, ``final``, that always answers.

Convolutional heads (docs/cnn.md, :mod:`mcuflow.frontend.torch_conv`): a leading ``Unflatten`` gives the
graph its ``input_shape``; convolutions and pooling become ``Conv2d``/``Pool2d`` nodes on HWC values;
``BatchNorm2d`` and ``ReLU6`` fold into the convolution before them; a ``Flatten`` of a map is no node,
and the linear layer after it reads permuted columns (:class:`mcuflow.frontend.layout.Layout`).

Layers are matched by exact type, as the checkpoint's layer list matches them; anything else is
refused by path and type, e.g. ``head.2 (Sigmoid)``. :mod:`mcuflow.frontend.torch_check` then runs
the lowered graph against the torch model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.frontend.layout import Layout, UnsupportedLayerError, permute_columns, vector
from mcuflow.frontend.torch_conv import CONV_TYPES, POOL_TYPES, fold_batchnorm_conv, fuse_relu6, lower_conv, lower_pool
from mcuflow.ir.graph import ExitBranch, Graph, Linear, Node, Pad, Relu, Shape
from mcuflow.nn.sparse import Pad as TorchPad
from mcuflow.nn.sparse import SparseLinear
from mcuflow.sparsity.patterns import structured_params

DEVICE_LAYERS = (
    "Pad, Flatten, Identity, Dropout, Linear, SparseLinear, ReLU, BatchNorm1d (folded into the linear layer "
    "before it), and for feature maps Unflatten (the head's first layer), Conv2d, Conv1d (dense, grouped, "
    "depthwise), SparseConv2d, SparseConv1d, MaxPool2d/1d, AvgPool2d/1d, AdaptiveAvgPool2d/1d(1), "
    "BatchNorm2d (folded into the convolution before it) and ReLU6 (after a convolution)"
)
FINAL_EXIT = "final"


@dataclass
class LoweredChain:
    """The IR nodes of one torch Sequential (head, an exit branch, the tail).

    ``ends[i]`` is the number of nodes after the chain's module ``i``: its output is the value after
    that many nodes. None where the output exists only inside a fold (a linear layer's output before
    the BatchNorm folded into it)."""

    nodes: list[Node]
    ends: list[int | None]
    modules: list[tuple[str, nn.Module]]  # the chain's modules with their paths, as ``ends`` counts them
    layouts: list[Layout]  # the value after each module: its IR shape and torch's order (torch_conv.Layout)
    start: Layout  # the chain's input

    @property
    def layout(self) -> Layout:
        """After the chain."""
        return self.layouts[-1] if self.layouts else self.start

    @property
    def width(self) -> int:  # after the chain
        return self.layout.width


@dataclass
class LoweredModel:
    """A SplitNet lowered: the graph the compiler takes, and how its nodes line up with the modules."""

    graph: Graph
    head: LoweredChain
    exits: list[LoweredChain]  # the model's own exits, in order (not the final one)
    tail: LoweredChain

    @property
    def whole_on_device(self) -> bool:
        return not self.tail.nodes


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _linear(module: nn.Module, path: str, layout: Layout) -> Linear:
    kind = type(module).__name__
    if layout.dims:
        raise ConfigError(f"{path} ({kind}) reads a vector but receives {layout.describe()}; flatten it first")
    if module.in_features != layout.width:
        raise ConfigError(f"{path} ({kind}) expects {module.in_features} inputs but receives {layout.width}")
    node = _linear_node(module, path)
    return permute_columns(node, layout) if layout.permuted else node


def _linear_node(module: nn.Module, path: str) -> Linear:
    if isinstance(module, SparseLinear):
        params = None
        if module.pattern == "structured":
            params = structured_params(module.in_features, module.out_features, module.out_degree, module.seed)
        cols = module.columns.detach().cpu().numpy().astype(np.int64)
        bias = _np(module.bias)
        return Linear(path, module.in_features, module.out_features, _np(module.weight), cols, bias,
                      pattern=module.pattern, params=params)  # fmt: skip
    bias = _np(module.bias) if module.bias is not None else np.zeros(module.out_features)
    cols = np.tile(np.arange(module.in_features, dtype=np.int64), (module.out_features, 1))
    return Linear(path, module.in_features, module.out_features, _np(module.weight), cols, bias)


def _fold_batchnorm(bn: nn.BatchNorm1d, path: str, nodes: list[Node], ends: list[int | None], width: int) -> None:
    """Fold ``bn`` into the linear node that ``nodes`` ends with; outputs that saw it unnormalised vanish."""
    if not nodes or not isinstance(nodes[-1], Linear):
        raise UnsupportedLayerError(
            f"{path} (BatchNorm1d) cannot be folded: it does not follow a linear layer, and the compiler "
            "folds a BatchNorm into the linear layer right before it"
        )
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(
            f"{path} (BatchNorm1d) cannot be folded: it keeps no running statistics "
            "(track_running_stats=False), so at inference it normalises each batch by its own"
        )
    if bn.num_features != width:
        raise ConfigError(f"{path} (BatchNorm1d) normalises {bn.num_features} features but receives {width}")
    linear = nodes[-1]
    gamma = _np(bn.weight) if bn.affine else np.ones(width)
    beta = _np(bn.bias) if bn.affine else np.zeros(width)
    scale = gamma / np.sqrt(_np(bn.running_var) + float(bn.eps))
    weight = linear.weight * scale[:, None]  # row r of the row-sparse weights is output r: scaling keeps zeros zero
    bias = (linear.bias - _np(bn.running_mean)) * scale + beta
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise UnsupportedLayerError(f"{path} (BatchNorm1d) cannot be folded: its statistics give non-finite weights")
    nodes[-1] = dataclasses.replace(linear, weight=weight, bias=bias)
    for i, end in enumerate(ends):
        if end == len(nodes):
            ends[i] = None  # this module's output was the linear layer's, before the normalisation


def _lower(module: nn.Module, path: str, layout: Layout, nodes: list[Node], ends: list[int | None]) -> Layout:
    """Append ``module``'s IR nodes to ``nodes``; the layout after it."""
    kind = type(module)
    if kind is nn.Sequential:
        for i, child in enumerate(module):
            layout = _lower(child, f"{path}.{i}", layout, nodes, ends)
        return layout
    if kind in (nn.Identity, nn.Dropout):
        return layout  # dropout is the identity at inference
    if kind is nn.ReLU:
        nodes.append(Relu(path, layout.width))
        return layout
    if kind in CONV_TYPES:
        node, layout = lower_conv(module, path, layout)
        nodes.append(node)
        return layout
    if kind in POOL_TYPES:
        node, layout = lower_pool(module, path, layout)
        nodes.append(node)
        return layout
    if kind is nn.BatchNorm2d or (kind is nn.BatchNorm1d and layout.dims == 1):
        fold_batchnorm_conv(module, path, nodes, ends, layout)
        return layout
    if kind is nn.ReLU6:
        fuse_relu6(path, nodes, ends)
        return layout
    if kind is nn.Unflatten:
        return _unflatten(module, path, layout)
    if kind is nn.Flatten:
        if (module.start_dim, module.end_dim) != (1, -1):
            raise UnsupportedLayerError(
                f"{path} (Flatten) flattens dimensions {module.start_dim}..{module.end_dim}; the device takes each "
                "sample as one vector, so only Flatten(1, -1) (the default) compiles"
            )
        # No node: the IR's values are flat already. A feature map stays in HWC order, and the linear layer
        # that reads it gets its columns permuted from torch's CHW (Layout.chw).
        return dataclasses.replace(layout, dims=0)
    if kind not in (TorchPad, SparseLinear, nn.Linear, nn.BatchNorm1d):
        raise UnsupportedLayerError(
            f"{path} ({kind.__name__}) has no device kernel; the head and exits may hold only {DEVICE_LAYERS}"
        )
    if kind in (SparseLinear, nn.Linear):
        nodes.append(_linear(module, path, layout))
        return vector(module.out_features)
    if layout.dims:
        raise UnsupportedLayerError(f"{path} ({kind.__name__}) cannot take {layout.describe()}; flatten it first")
    if layout.permuted:
        raise UnsupportedLayerError(
            f"{path} ({kind.__name__}) reads a flattened feature map, in torch's CHW order where the device holds "
            "HWC; only a linear layer (its columns permuted) may read a flattened map"
        )
    if kind is TorchPad:
        if module.in_features != layout.width:
            raise ConfigError(f"{path} (Pad) expects {module.in_features} inputs but receives {layout.width}")
        nodes.append(Pad(path, module.in_features, module.size))
        return vector(module.size)
    _fold_batchnorm(module, path, nodes, ends, layout.width)  # BatchNorm1d over a vector
    return layout


def _unflatten(module: nn.Unflatten, path: str, layout: Layout) -> Layout:
    """A flat input shaped ``(C, H, W)`` or ``(C, L)``: a feature map in torch's order."""
    size = tuple(int(v) for v in module.unflattened_size)
    if layout.dims or module.dim not in (1, -1) or len(size) not in (2, 3):
        raise UnsupportedLayerError(
            f"{path} (Unflatten) must shape a flat vector into (C, H, W) or (C, L) (dim 1); got dim {module.dim}, "
            f"size {size} on {layout.describe()}"
        )
    if int(np.prod(size)) != layout.width:
        raise ConfigError(f"{path} (Unflatten) shapes {int(np.prod(size))} values but receives {layout.width}")
    c, h, w = size if len(size) == 3 else (size[0], 1, size[1])
    if c > 1 and h * w > 1:
        # The flat vector is in torch's CHW order; the device reads HWC, and inputs reach it as they come.
        raise UnsupportedLayerError(
            f"{path} (Unflatten) shapes a {c}-channel input: the device reads feature maps in HWC order and mcuflow "
            "feeds inputs as they come (CHW), so only 1-channel images (or C x 1 x 1) compile"
        )
    return Layout(Shape(h, w, c), len(size) - 1, True)


def lower_chain(modules: Sequence[tuple[str, nn.Module]], start: int | Layout) -> LoweredChain:
    """The IR nodes of ``modules`` (each with its path) applied in turn to ``start`` (a vector width or a
    :class:`Layout`)."""
    start = vector(start) if isinstance(start, int) else start
    nodes: list[Node] = []
    ends: list[int | None] = []
    layouts: list[Layout] = []
    layout = start
    for path, module in modules:
        layout = _lower(module, path, layout, nodes, ends)
        ends.append(len(nodes))
        layouts.append(layout)
    return LoweredChain(nodes, ends, list(modules), layouts, start)


def _children(seq: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The modules a branch applies in turn: a Sequential's children, or the branch itself."""
    if type(seq) is nn.Sequential:
        return [(f"{prefix}.{i}", m) for i, m in enumerate(seq)]
    return [(prefix, seq)]


def _input_width(head: nn.Sequential) -> int | None:
    """The width of the head's input: its first layer that has one, past those that keep it."""
    for module in head.modules():
        if type(module) is nn.Unflatten:
            return int(np.prod(module.unflattened_size))
        if type(module) in (TorchPad, SparseLinear, nn.Linear):
            return module.in_features
        if type(module) is nn.BatchNorm1d:
            return module.num_features
        if type(module) not in (nn.Sequential, nn.Flatten, nn.Identity, nn.Dropout, nn.ReLU):
            return None
    return None


def lower_tail(tail: nn.Module, start: int | Layout) -> LoweredChain:
    """The tail as the host tail runner (``tail.npz``) runs it: linear layers, each with or without a ReLU.

    After a convolutional head it reads the head output in the IR's HWC order: the first linear layer's
    columns are permuted from torch's CHW (so the host feeds it the device's vector as it comes)."""
    chain = lower_chain(_children(tail, "tail"), start)
    for i, node in enumerate(chain.nodes):
        if not isinstance(node, Linear | Relu):
            kind = type(chain.modules[next(j for j, e in enumerate(chain.ends) if e is not None and e > i)][1])
            raise UnsupportedLayerError(
                f"{node.name} ({kind.__name__}) cannot run in the host tail, which runs Linear, SparseLinear and "
                "ReLU (BatchNorm1d folded, Flatten, Identity and Dropout dropped)"
            )
        if isinstance(node, Relu) and (i == 0 or not isinstance(chain.nodes[i - 1], Linear)):
            raise ConfigError(f"{node.name} (ReLU) does not follow a linear layer")
    return chain


def lower_model(model: nn.Module, model_hash: str, name: str = "model") -> LoweredModel:
    """A SplitNet lowered to the float IR of its head and exits (and its tail, for ``tail.npz``)."""
    head_mod = getattr(model, "head", None)
    if not isinstance(head_mod, nn.Sequential) or not hasattr(model, "exits"):
        raise ConfigError(f"{type(model).__name__} is not a SplitNet (needs .head, .exits, .exit_points)")
    cfg = getattr(model, "config", None)
    input_len = (cfg.input_size or cfg.sizes[0]) if cfg is not None else _input_width(head_mod)
    if input_len is None:
        raise ConfigError("cannot tell the width of the head's input: it starts with no Unflatten, Pad or linear layer")
    head = lower_chain([(f"head.{i}", m) for i, m in enumerate(head_mod)], input_len)
    exits, branches = [], []
    for e, (at, branch) in enumerate(zip(model.exit_points, model.exits, strict=True)):
        position = head.ends[at - 1]
        if position is None:
            raise UnsupportedLayerError(
                f"exits.{e} reads the output of head.{at - 1} before the BatchNorm or ReLU6 that is folded into "
                "it; attach the exit after that layer"
            )
        chain = lower_chain(_children(branch, f"exits.{e}"), head.layouts[at - 1])
        if not any(isinstance(n, Linear) for n in chain.nodes):
            raise ConfigError(f"exits.{e} has no linear layer producing class logits")
        exits.append(chain)
        branches.append(ExitBranch(f"exits.{e}", position, chain.nodes))
    tail = lower_tail(model.tail, head.layout)
    num_classes = cfg.n_classes if cfg is not None else None
    for e, chain in enumerate(exits):
        out = [n for n in chain.nodes if isinstance(n, Linear)][-1].n_out
        if num_classes is None:
            num_classes = out
        if out != num_classes:
            raise ConfigError(f"exits.{e} gives {out} logits, expected {num_classes} classes")
    if num_classes is None and tail.nodes:
        num_classes = tail.width
    if tail.nodes and tail.width != num_classes:
        raise ConfigError(f"the tail gives {tail.width} logits, expected {num_classes} classes")
    if not tail.nodes:
        # The whole model is on the device: its last layer answers every sample the exits leave.
        if num_classes is not None and head.width != num_classes:
            raise ConfigError(
                f"the tail is empty, so the head's output is the class logits, but it has {head.width} values "
                f"for {num_classes} classes"
            )
        num_classes = head.width
        branches.append(ExitBranch(FINAL_EXIT, len(head.nodes), [], final=True))
    if num_classes is None:
        raise ConfigError("the model has no exits and no config giving its number of classes")
    # A head that starts by shaping its flat input (Unflatten) takes a feature map: Graph.input_shape.
    input_shape = head.layouts[0].shape if head.modules and type(head.modules[0][1]) is nn.Unflatten else None
    graph = Graph(name, input_len, head.nodes, branches, num_classes, model_hash, source="torch",
                  input_shape=input_shape)  # fmt: skip
    return LoweredModel(graph, head, exits, tail)


def graph_from_model(model: nn.Module, model_hash: str, name: str = "model") -> Graph:
    """The head and exits of a SplitNet as a float IR graph."""
    return lower_model(model, model_hash, name).graph
