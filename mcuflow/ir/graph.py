"""The float IR the front ends produce: a chain of nodes for the head, branches for the exits.

A linear node always holds its weights row-sparse: ``weight[r, k]`` multiplies
input ``columns[r, k]``. A dense layer is the special case ``columns[r] = 0..n_in-1``.
``pattern`` says where the columns come from (``dense``, ``structured`` with its
closed-form ``params``, ``random``, or ``explicit`` for anything read from a file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mcuflow.sparsity.patterns import StructuredParams


@dataclass
class Pad:
    """Zero-pad the input vector from ``n_in`` to ``n_out`` (flatten is implicit: inputs are vectors)."""

    name: str
    n_in: int
    n_out: int

    @property
    def kind(self) -> str:
        return "pad"


@dataclass
class Relu:
    name: str
    width: int

    @property
    def kind(self) -> str:
        return "relu"


@dataclass
class Linear:
    name: str
    n_in: int
    n_out: int
    weight: np.ndarray  # float64 (n_out, d)
    columns: np.ndarray  # int64 (n_out, d)
    bias: np.ndarray  # float64 (n_out,)
    pattern: str = "dense"
    params: StructuredParams | None = None
    relu: bool = False  # set by the fuse_relu pass

    @property
    def kind(self) -> str:
        return "linear"

    @property
    def degree(self) -> int:
        return int(self.columns.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.columns.size)

    @property
    def macs(self) -> int:
        return self.nnz

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.einsum("brk,rk->br", x[:, self.columns], self.weight) + self.bias
        return np.maximum(y, 0.0) if self.relu else y


Node = Pad | Relu | Linear


@dataclass
class ExitBranch:
    """An exit reading the head's value after ``at`` head nodes (``at == len(head)``: the head output).

    A ``final`` exit has no nodes: it reads the head output as the class logits (the whole model is on
    the device) and always answers, whatever the exit threshold."""

    name: str
    at: int
    nodes: list[Node] = field(default_factory=list)
    final: bool = False


@dataclass
class Graph:
    name: str
    input_len: int
    head: list[Node]
    exits: list[ExitBranch]
    num_classes: int
    model_hash: str
    source: str = "torch"

    def width_after(self, at: int) -> int:
        w = self.input_len
        for node in self.head[:at]:
            w = node.n_out if isinstance(node, Pad | Linear) else w
        return w

    @property
    def intermediate_len(self) -> int:
        return self.width_after(len(self.head))

    def forward(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """Float forward in float64: (exit logits, head output, every node's output by name)."""
        acts: dict[str, np.ndarray] = {}
        exit_logits: list[np.ndarray | None] = [None] * len(self.exits)
        h = np.asarray(x, dtype=np.float64)
        for i in range(len(self.head) + 1):
            for e, branch in enumerate(self.exits):
                if branch.at == i:
                    z = h
                    for node in branch.nodes:
                        z = run_node(node, z)
                        acts[node.name] = z
                    exit_logits[e] = z
            if i < len(self.head):
                h = run_node(self.head[i], h)
                acts[self.head[i].name] = h
        return exit_logits, h, acts  # type: ignore[return-value]


def run_node(node: Node, x: np.ndarray) -> np.ndarray:
    if isinstance(node, Pad):
        return np.pad(x, ((0, 0), (0, node.n_out - node.n_in)))
    if isinstance(node, Relu):
        return np.maximum(x, 0.0)
    return node.forward(x)
