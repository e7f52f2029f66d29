"""Complexity-driven sparsity in the sense of Zawish et al. ("Complexity-Driven CNN Compression for
Resource-constrained Edge AI"): rank the layers by their share of the network's parameters (PA), MACs
(FA) or activation memory (MA), and put the sparsity where that share is largest. Candidates are then
trained directly at that fixed sparsity (predefined sparsity: no ranking or fine-tuning step).

The rule here: the device layer with the largest share keeps ``1 - level`` of its connections, every other
layer prunes in proportion to its share, ``prune_j = level * share_j / max(share)``. For an MLP the PA and
FA shares differ only by the biases (a dense junction has n_in*n_out MACs and n_in*n_out + n_out
parameters), so PA and FA allocate almost alike; MA counts each layer's int8 input and output activations
and the int16 scratch copy of its input that the index-free kernel makes.
"""

from __future__ import annotations

from collections.abc import Sequence

MODES = ("pa", "fa", "ma")


def layer_metric(mode: str, n_in: int, n_out: int) -> float:
    """One dense layer's parameters (pa), MACs (fa) or activation bytes (ma)."""
    if mode == "pa":
        return n_in * n_out + n_out
    if mode == "fa":
        return n_in * n_out
    if mode == "ma":
        return n_in + n_out + 2 * n_in
    raise ValueError(f"unknown complexity mode {mode!r}; choose one of {', '.join(MODES)}")


def shares(mode: str, widths: Sequence[int]) -> list[float]:
    """Each layer's share of the whole, for layers ``widths[j] -> widths[j+1]``."""
    m = [layer_metric(mode, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
    total = sum(m)
    return [v / total for v in m]


def allocate(mode: str, widths: Sequence[int], level: float) -> list[float]:
    """The density (kept fraction of connections) of each layer: ``level`` pruning on the layer with the
    largest share, proportionally less elsewhere."""
    if not 0.0 <= level < 1.0:
        raise ValueError(f"pruning level must be in [0, 1), got {level}")
    s = shares(mode, widths)
    top = max(s)
    return [1.0 - level * v / top for v in s]
