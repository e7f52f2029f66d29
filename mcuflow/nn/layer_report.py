"""Per-layer weights and MACs of a SplitNet, convolutions included, measured on one probe input.

Weights count what exists: a SparseConv's kept taps on its channel pattern, a SparseLinear's edges,
biases apart. MACs are per sample: a convolution's weights times its output positions, a linear
layer's weights. ``device`` sums the head and every exit (what the microcontroller stores and, when
no sample leaves early, runs).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mcuflow.nn.conv import SparseConv1d, SparseConv2d
from mcuflow.nn.sparse import SparseLinear
from mcuflow.nn.split import SplitNet


def _weights(module: nn.Module) -> int | None:
    if isinstance(module, SparseConv1d | SparseConv2d):
        return module.nnz
    if isinstance(module, SparseLinear | nn.Linear | nn.Conv1d | nn.Conv2d):
        return int(module.weight.numel())
    return None


def _rows(seq: nn.Module, x: torch.Tensor, prefix: str) -> tuple[list[dict[str, Any]], torch.Tensor]:
    rows = []
    for name, module in seq.named_children() if isinstance(seq, nn.Sequential) else [("", seq)]:
        y = module(x)
        w = _weights(module)
        if w is not None:
            positions = math.prod(y.shape[2:]) if y.dim() > 2 else 1
            rows.append(
                {
                    "layer": f"{prefix}.{name}" if name else prefix,
                    "type": type(module).__name__,
                    "in": list(x.shape[1:]),
                    "out": list(y.shape[1:]),
                    "weights": w,
                    "biases": 0 if getattr(module, "bias", None) is None else int(module.bias.numel()),
                    "macs": w * positions,
                }
            )
        x = y
    return rows, x


@torch.no_grad()
def layer_report(model: SplitNet, input_size: int) -> dict[str, Any]:
    """``{"layers": [...], "device": {...}, "tail": {...}}`` for one flat input of ``input_size``."""
    was = model.training
    model.eval()
    try:
        x = torch.zeros(1, input_size)
        head_rows, values = [], [x]
        for i, module in enumerate(model.head):
            rows, y = _rows(nn.Sequential(module), values[-1], f"head.{i}")
            head_rows += [r | {"layer": f"head.{i}"} for r in rows]
            values.append(y)
        exit_rows = []
        for e, (at, branch) in enumerate(zip(model.exit_points, model.exits, strict=True)):
            exit_rows += _rows(branch, values[at], f"exits.{e}")[0]
        tail_rows = _rows(model.tail, values[-1], "tail")[0]
    finally:
        model.train(was)

    def total(rows: list[dict[str, Any]]) -> dict[str, int]:
        return {k: sum(r[k] for r in rows) for k in ("weights", "biases", "macs")}

    return {
        "layers": head_rows + exit_rows + tail_rows,
        "device": total(head_rows + exit_rows),
        "head": total(head_rows),
        "exits": total(exit_rows),
        "tail": total(tail_rows),
        "offload": list(values[-1].shape[1:]),
    }
