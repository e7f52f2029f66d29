"""Batch normalisation during training only, folded into the junctions afterwards.

A BatchNorm on a junction's pre-activations is, once its statistics are frozen, a
per-output-row scale and shift: ``bn(Wx + b) = (s * W) x + s * (b - mean) + beta`` with
``s = gamma / sqrt(var + eps)``. Scaling whole rows keeps every zero of a sparse pattern
zero, so folding gives back a model with exactly the same junctions, parameters and
export path as one trained without it; the normalisation only changes how training
moves through weight space (it lets a higher learning rate train the narrow sparse
layers stably).

The norms hang on the layers as forward hooks, so the SplitNet itself (its modules,
exit positions and state dict) is never restructured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mcuflow.nn.sparse import SparseLinear
from mcuflow.nn.split import SplitNet


@dataclass
class _Attached:
    layer: nn.Module
    norm: nn.BatchNorm1d
    handle: torch.utils.hooks.RemovableHandle


class FoldableNorms:
    """BatchNorms on every hidden junction of ``model`` (a junction followed by a ReLU), head and tail."""

    def __init__(self, model: SplitNet):
        self.attached: list[_Attached] = []
        for seq in (model.head, model.tail):
            mods = list(seq)
            for layer, nxt in zip(mods[:-1], mods[1:], strict=True):
                if isinstance(layer, (SparseLinear, nn.Linear)) and isinstance(nxt, nn.ReLU):
                    norm = nn.BatchNorm1d(layer.out_features)
                    handle = layer.register_forward_hook(self._hook(norm))
                    self.attached.append(_Attached(layer, norm, handle))

    @staticmethod
    def _hook(norm: nn.BatchNorm1d):
        def apply(layer: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
            norm.train(layer.training)  # follows model.train()/eval(), e.g. for per-epoch evaluation
            return norm(output)

        return apply

    def parameters(self) -> list[nn.Parameter]:
        return [p for a in self.attached for p in a.norm.parameters()]

    @torch.no_grad()
    def fold(self) -> None:
        """Fold the running statistics and affine terms into the layers and remove the hooks."""
        for a in self.attached:
            n = a.norm
            scale = n.weight / torch.sqrt(n.running_var + n.eps)
            a.layer.weight.mul_(scale[:, None])  # compact (out, in_degree) or dense (out, in): rows either way
            a.layer.bias.copy_((a.layer.bias - n.running_mean) * scale + n.bias)
            a.handle.remove()
        self.attached = []
