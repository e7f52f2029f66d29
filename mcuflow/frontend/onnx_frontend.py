"""ONNX -> float IR, for a head and exits trained elsewhere.

Accepted graphs: one float input ``(N, n_in)``, ``(n_in,)`` or ``(N, C, H, W)`` (any fixed shape after the
batch axis: the device sees it flattened, row-major), and nodes Gemm, MatMul followed by Add (a bias
initializer), Relu, Flatten, Reshape to ``(N, -1)`` / ``(N, width)`` (what torch's exporters write for
``nn.Flatten`` and ``x.view(N, -1)``) and Identity. Weights must be initializers (or Constant nodes).

Convolutional graphs (any Conv node; :mod:`mcuflow.frontend.onnx_conv`, docs/cnn.md): the input is a
1-channel ``(N, 1, H, W)`` or ``(N, 1, L)`` feature map (``Graph.input_shape``), and Conv (dense, grouped,
depthwise; zero pads, dilation 1), MaxPool / AveragePool (no pads, floor), GlobalAveragePool,
BatchNormalization and Clip to [0, 6] (folded into the Conv before them) are accepted too. Values are
HWC in the IR; the Gemm/MatMul after a Flatten of a map gets its columns permuted from ONNX's CHW.
A residual Add (two data inputs) is refused: the IR is a chain.

Outputs are identified by order: the **first graph output is the head output** (the intermediate
the device offloads); **every further output is an exit's logits**, exits evaluated in that order.
Each exit's chain is followed back to the head chain; the point where it joins is where it reads.
The input's int8 scale and zero point come from the calibration inputs (or the user), as for a checkpoint.
Zero weights are kept as stored (dense) unless every row has the same nonzero count, in which case
the layer becomes a fixed in-degree sparse layer (``pattern='explicit'``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.frontend import onnx_conv
from mcuflow.frontend.layout import Layout, permute_columns, vector
from mcuflow.ir.graph import ExitBranch, Graph, Linear, Relu, Shape

SUPPORTED = (
    "Gemm", "MatMul", "Add", "Relu", "Flatten", "Reshape", "Identity",
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Clip",
)  # fmt: skip
# Nodes that become no IR node of their own: folded into the conv before them, or layout only.
_NO_NODE = ("Flatten", "Reshape", "Identity", "BatchNormalization", "Clip", "Add")


def _attr(node, name: str, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _linear_from_matrix(name: str, w: np.ndarray, b: np.ndarray) -> Linear:
    n_out, n_in = w.shape
    nz = w != 0
    counts = nz.sum(axis=1)
    if counts.min() == counts.max() and 0 < counts[0] < n_in:
        cols = np.stack([np.flatnonzero(row) for row in nz]).astype(np.int64)
        weight = np.take_along_axis(w, cols, axis=1)
        return Linear(name, n_in, n_out, weight, cols, b, pattern="explicit")
    cols = np.tile(np.arange(n_in, dtype=np.int64), (n_out, 1))
    return Linear(name, n_in, n_out, w.astype(np.float64), cols, b)


def graph_from_onnx(path: str | Path, name: str | None = None) -> Graph:
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and friends
        raise ConfigError(f"{path} is not a readable ONNX model: {str(err).splitlines()[0][:200]}") from None
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ConfigError(f"{path}: expected exactly one non-weight graph input, found {len(inputs)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    sample = dims[1:] if len(dims) > 1 else dims  # the batch axis first, its size free
    if not sample or any(d <= 0 for d in sample):
        raise ConfigError(f"{path}: the input needs fixed dimensions after the batch axis, got {dims}")
    input_name, input_len = inputs[0].name, int(np.prod(sample))
    start = vector(input_len)
    if len(sample) in (2, 3) and any(n.op_type == "Conv" for n in g.node):
        # A convolutional graph: the input is a (C, H, W) or (C, L) feature map.
        c, h, w = sample if len(sample) == 3 else (sample[0], 1, sample[1])
        if c > 1 and h * w > 1:
            raise ConfigError(
                f"{path}: the input {inputs[0].name} has {c} channels; the device reads feature maps in HWC order "
                "and mcuflow feeds inputs as they come (CHW), so only 1-channel images compile"
            )
        start = Layout(Shape(h, w, c), len(sample) - 1, True)
    if len(g.output) < 1:
        raise ConfigError(f"{path}: the graph has no outputs")

    producer = {}
    for i, node in enumerate(g.node):
        if node.op_type == "Constant" and _attr(node, "value", None) is not None:
            # torch's exporter writes Clip's bounds (and the like) as Constant nodes: they are initializers.
            inits[node.output[0]] = numpy_helper.to_array(_attr(node, "value", None)).astype(np.float64)
            continue
        if node.op_type not in SUPPORTED:
            raise ConfigError(
                f"{path}: node {node.name or i} ({node.op_type}) is not supported; use {', '.join(SUPPORTED)}"
            )
        for out in node.output:
            producer[out] = node

    def data_input(node) -> str:
        data = [x for x in node.input if x and x not in inits]
        if len(data) > 1 and node.op_type == "Add":
            raise ConfigError(
                f"{path}: node {node.name} (Add) adds two values, a residual connection; it is not supported "
                "(the device runs a chain of layers; an Add is only supported as the bias of a MatMul)"
            )
        if len(data) != 1:
            raise ConfigError(f"{path}: node {node.name} ({node.op_type}) needs one data input and initializer weights")
        return data[0]

    def chain(tensor: str, stop: set[str]) -> tuple[list, str]:
        """Nodes from a stop tensor to ``tensor`` (in execution order), and the stop tensor reached."""
        nodes = []
        while tensor not in stop:
            if tensor not in producer:
                raise ConfigError(f"{path}: output {tensor} does not depend on the input {input_name}")
            node = producer[tensor]
            nodes.append(node)
            tensor = data_input(node)
        return nodes[::-1], tensor

    def lower(nodes, layout: Layout, prefix: str, layouts: list | None = None) -> tuple[list, Layout]:
        """IR nodes of ``nodes`` applied to ``layout``; ``layouts`` gets the layout after each node (None where
        the node's output exists only inside a fold)."""
        out, i = [], 0
        while i < len(nodes):
            node = nodes[i]
            label = node.name or f"{prefix}.{i}"
            width = layout.width
            before = len(out)
            if node.op_type == "Flatten":
                if _attr(node, "axis", 1) != 1:
                    raise ConfigError(f"{path}: {label} (Flatten) must keep the batch axis (axis=1)")
                layout = dataclasses.replace(layout, dims=0)  # a map stays HWC; the next linear reads it permuted
            elif node.op_type == "Reshape":
                shape = [int(v) for v in inits[node.input[1]].reshape(-1)] if node.input[1] in inits else None
                if shape is None or len(shape) != 2 or shape[1] not in (-1, width):
                    raise ConfigError(
                        f"{path}: {label} (Reshape) to {shape} is not supported; only to (N, -1) or (N, {width})"
                    )
                layout = dataclasses.replace(layout, dims=0)
            elif node.op_type == "Identity":
                pass
            elif node.op_type == "Relu":
                out.append(Relu(label, width))
            elif node.op_type in ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Clip"):
                layout = onnx_conv.lower_node(node, label, layout, inits, out, path)
            elif layout.dims:
                raise ConfigError(f"{path}: {label} ({node.op_type}) cannot take a feature map; flatten it first")
            elif node.op_type == "Gemm":
                if _attr(node, "transA", 0):
                    raise ConfigError(f"{path}: {label} (Gemm) with transA=1 is not supported")
                w = inits[node.input[1]] * float(_attr(node, "alpha", 1.0))
                w = w if _attr(node, "transB", 0) else w.T
                b = inits[node.input[2]] * float(_attr(node, "beta", 1.0)) if len(node.input) > 2 else 0.0
                b = np.broadcast_to(np.asarray(b, dtype=np.float64), (w.shape[0],)).copy()
                out.append(_linear_from_matrix(label, w, b))
            elif node.op_type == "MatMul":
                w = inits[node.input[1]].T
                b = np.zeros(w.shape[0])
                if i + 1 < len(nodes) and nodes[i + 1].op_type == "Add":
                    add = nodes[i + 1]
                    bias_name = [x for x in add.input if x in inits]
                    if len(bias_name) != 1:
                        raise ConfigError(f"{path}: {add.name} (Add) after MatMul must add one initializer bias")
                    b = np.broadcast_to(inits[bias_name[0]].reshape(-1), (w.shape[0],)).copy()
                    i += 1
                    if layouts is not None:
                        layouts.append(None)  # the MatMul's own output, before the bias
                out.append(_linear_from_matrix(label, w, b))
            else:
                raise ConfigError(
                    f"{path}: {label} (Add) is only supported as the bias of a MatMul (residual adds are not: "
                    "the device runs a chain of layers)"
                )
            if len(out) > before and isinstance(out[-1], Linear):
                if out[-1].n_in != width:
                    raise ConfigError(f"{path}: {label} expects {out[-1].n_in} inputs but receives {width}")
                if layout.permuted:
                    out[-1] = permute_columns(out[-1], layout)
                layout = vector(out[-1].n_out)
            if layouts is not None:
                if node.op_type in ("BatchNormalization", "Clip") and len(out) == before:
                    # folded into the conv before it: the conv's output before the fold is no value any more
                    layouts[:] = [None if lay is not None and lay[1] == len(out) else lay for lay in layouts]
                layouts.append((layout, len(out)))
            i += 1
        return out, layout

    head_nodes, _ = chain(g.output[0].name, {input_name})
    after: list = []
    head, layout = lower(head_nodes, start, "head", after)
    width = layout.width
    # head tensor -> (layout, number of IR head nodes before it); None: it exists only inside a fold
    head_tensors: dict[str, tuple | None] = {input_name: (start, 0)}
    for node, entry in zip(head_nodes, after, strict=True):
        head_tensors[node.output[0]] = entry
    exits = []
    num_classes = None
    for e, output in enumerate(g.output[1:]):
        nodes, joined = chain(output.name, set(head_tensors))
        if head_tensors[joined] is None:
            raise ConfigError(
                f"{path}: exit output {output.name} reads {joined}, a value folded away (a conv before its "
                "BatchNormalization or Clip, a MatMul before its bias); attach the exit after it"
            )
        w_at, at = head_tensors[joined]
        branch, n_cls_layout = lower(nodes, w_at, f"exit{e}")
        n_cls = n_cls_layout.width
        if not any(isinstance(n, Linear) for n in branch):
            raise ConfigError(f"{path}: exit output {output.name} has no linear layer")
        if num_classes is not None and n_cls != num_classes:
            raise ConfigError(f"{path}: exit {output.name} gives {n_cls} logits, another gives {num_classes}")
        num_classes = n_cls
        exits.append(ExitBranch(f"exit{e}_{output.name}", at, branch))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    input_shape = start.shape if start.dims else None
    return Graph(name or path.stem, input_len, head, exits, num_classes or width, digest, source="onnx",
                 input_shape=input_shape)  # fmt: skip
