"""SplitNet: a head for the device, early exits hanging off it, a tail for the host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class SplitNet(nn.Module):
    """``head`` runs on the device, ``tail`` on the host.

    ``exits`` is a sequence of ``(at, branch)``: ``branch`` reads the output of
    ``head[:at]`` (``at == len(head)`` is the head's output, where the device
    decides whether to answer locally). ``forward`` returns
    ``(list of exit logits, final logits)``.
    """

    def __init__(self, head: nn.Sequential, exits: Sequence[tuple[int, nn.Module]], tail: nn.Sequential):
        super().__init__()
        self.head = head
        self.tail = tail
        self.exit_points = [int(at) for at, _ in exits]
        for at in self.exit_points:
            if not 1 <= at <= len(head):
                raise ValueError(f"exit attached at head position {at}, but the head has {len(head)} modules")
        self.exits = nn.ModuleList([branch for _, branch in exits])

    @classmethod
    def from_layers(
        cls, layers: Sequence[nn.Module], split: int, exits: Mapping[int, nn.Module] | None = None
    ) -> SplitNet:
        """Cut a plain layer list: ``layers[:split]`` is the head, the rest the tail.

        ``exits`` maps a position ``1..split`` (the output of ``layers[:position]``)
        to an exit branch; several exits may share a position. ``split == len(layers)``
        puts the whole model on the device (an empty tail).
        """
        layers = list(layers)
        if not 1 <= split <= len(layers):
            raise ValueError(f"split {split} must put 1..{len(layers)} of the {len(layers)} layers in the head")
        items = list((exits or {}).items())
        return cls(nn.Sequential(*layers[:split]), items, nn.Sequential(*layers[split:]))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        exit_logits: list[torch.Tensor | None] = [None] * len(self.exits)
        h = x
        for i, layer in enumerate(self.head, start=1):
            h = layer(h)
            for e, at in enumerate(self.exit_points):
                if at == i:
                    exit_logits[e] = self.exits[e](h)
        return list(exit_logits), self.tail(h)  # type: ignore[arg-type]

    def run_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def run_tail(self, intermediate: torch.Tensor) -> torch.Tensor:
        return self.tail(intermediate)
