"""Fold each ReLU into the linear layer or convolution before it (it becomes the requantisation clamp)."""

from __future__ import annotations

import copy

from mcuflow.errors import ConfigError
from mcuflow.ir.graph import Conv2d, ExitBranch, Graph, Linear, Pad, Relu
from mcuflow.passes.fuse_conv import fuse_relu_into


def _fuse_chain(nodes: list, reads: set[int], where: str) -> tuple[list, dict[int, int]]:
    """Fused nodes and the map old position -> new position. ``reads`` are positions an exit reads."""
    out: list = []
    remap = {0: 0}
    for i, node in enumerate(nodes):
        if isinstance(node, Relu):
            prev = out[-1] if out else None
            fused = fuse_relu_into(prev) if i not in reads else None  # conv, pool
            if fused is not None:
                out[-1] = fused
                remap[i + 1] = len(out)
                continue
            if not isinstance(prev, Linear | Conv2d) or prev.relu or i in reads:
                raise ConfigError(
                    f"{where}: {node.name} (ReLU) does not follow a linear layer or convolution whose "
                    "pre-activation output is otherwise unused; the device only runs ReLU fused into one"
                )
            prev.relu = True
        elif isinstance(node, Pad):
            if out:
                raise ConfigError(f"{where}: {node.name} (Pad) is only supported as the first layer")
            out.append(node)
        else:
            out.append(node)
        remap[i + 1] = len(out)
    return out, remap


def fuse_relu(graph: Graph) -> Graph:
    g = copy.deepcopy(graph)
    head, remap = _fuse_chain(g.head, {e.at for e in g.exits}, "head")
    exits = []
    for e in g.exits:
        nodes, _ = _fuse_chain(e.nodes, set(), e.name)
        if any(isinstance(n, Pad) for n in nodes):
            raise ConfigError(f"{e.name}: Pad inside an exit is not supported")
        exits.append(ExitBranch(e.name, remap[e.at], nodes, final=e.final))
    g.head, g.exits = head, exits
    return g
