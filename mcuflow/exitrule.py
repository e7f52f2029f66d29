"""The early-exit rule, written once.

The device evaluates its exits in order of attach position (the head layer an exit reads), then of
exit index; the first exit whose confidence reaches *its own* threshold (``confidence >= threshold``)
answers, and a sample no exit answers goes to the host tail. The numpy reference, the HIL threshold
trade-off, the float model's end-to-end answer, the exit analysis and link fine-tuning all decide
exits through :func:`decide`, so they cannot drift apart.

numpy arrays in, numpy arrays out. Callers holding torch tensors convert them
(``t.detach().cpu().numpy()``): the rule is a handful of comparisons, not worth a second array
library's semantics here. Thresholds are compared as Python scalars, so a comparison runs in the
confidences' own dtype: float32 probabilities compare against the threshold rounded to float32,
exactly as ``tensor >= 0.9`` does in torch, and Q15 integers compare as integers (widened first, so
an unsigned confidence never wraps).

This module sits at the bottom of the import order: numpy and :mod:`mcuflow.errors` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mcuflow.errors import ConfigError

NO_EXIT = -1  # ExitDecision.exit_index of a sample that goes to the tail


@dataclass(frozen=True)
class ExitDecision:
    """Per sample, which exit answered; arrays of length N (``evaluated`` is (N, number of exits))."""

    exited: np.ndarray  # bool (N,): an exit answered on the device
    exit_index: np.ndarray  # int64 (N,): the answering exit's index, NO_EXIT where the tail answers
    evaluated: np.ndarray  # bool (N, E): exits the device runs for the sample (device order, up to the answer)

    def answer(self, per_exit: Sequence[np.ndarray], tail: np.ndarray) -> np.ndarray:
        """Per sample, the answering exit's value (label, confidence...) and ``tail``'s where no exit answered.

        The result has ``tail``'s dtype (a copy; neither input is changed)."""
        if len(per_exit) != self.evaluated.shape[1]:
            raise ConfigError(f"{len(per_exit)} per-exit value arrays for {self.evaluated.shape[1]} exits")
        out = np.array(tail, copy=True)
        for e, values in enumerate(per_exit):
            take = self.exit_index == e
            out[take] = np.asarray(values)[take]
        return out


def device_order(attach: Sequence[int]) -> list[int]:
    """Exit indices in the order the device evaluates them: by attach position, then by index."""
    return sorted(range(len(attach)), key=lambda e: (attach[e], e))


def reaches(confidence: np.ndarray, threshold: float | int) -> np.ndarray:
    """The per-exit test: ``confidence >= threshold`` (a tie at the threshold answers)."""
    conf = np.asarray(confidence)
    if conf.dtype.kind in "iub":
        conf = conf.astype(np.int64)
    return conf >= _scalar(threshold)


def decide(
    confidences: Sequence[np.ndarray],
    thresholds: float | int | Sequence[float | int],
    *,
    attach: Sequence[int] | None = None,
    samples: int | None = None,
) -> ExitDecision:
    """Apply the rule to per-exit confidences (one (N,) array per exit, in exit-index order).

    ``thresholds``: one per exit, or one scalar for every exit. ``attach``: each exit's attach
    position (None: the exits are already listed in device order). ``samples``: N, needed only when
    there are no exits (then every sample goes to the tail)."""
    confs = [np.asarray(c) for c in confidences]
    n_exits = len(confs)
    for e, c in enumerate(confs):
        if c.ndim != 1:
            raise ConfigError(f"exit {e}: confidences must be one value per sample, got shape {c.shape}")
    lengths = {len(c) for c in confs} | ({samples} if samples is not None else set())
    if len(lengths) > 1:
        raise ConfigError(f"exit confidences disagree on the number of samples: {sorted(lengths)}")
    if not lengths:
        raise ConfigError("no exits: pass samples= so the decision knows how many samples go to the tail")
    (n,) = lengths
    per_exit = _per_exit_thresholds(thresholds, n_exits)
    if attach is not None and len(attach) != n_exits:
        raise ConfigError(f"{len(attach)} attach positions for {n_exits} exits")
    order = list(range(n_exits)) if attach is None else device_order(attach)

    exited = np.zeros(n, dtype=bool)
    exit_index = np.full(n, NO_EXIT, dtype=np.int64)
    evaluated = np.zeros((n, n_exits), dtype=bool)
    for e in order:
        evaluated[:, e] = ~exited  # the device stops at the first exit that answers
        take = reaches(confs[e], per_exit[e]) & ~exited
        exit_index[take] = e
        exited |= take
    return ExitDecision(exited, exit_index, evaluated)


def _per_exit_thresholds(thresholds, n_exits: int) -> list:
    if np.ndim(thresholds) == 0:
        return [_scalar(thresholds)] * n_exits
    values = [_scalar(t) for t in thresholds]
    if len(values) != n_exits:
        raise ConfigError(f"{len(values)} exit thresholds for {n_exits} exits")
    return values


def _scalar(threshold):
    """A Python int or float: compared as a weak scalar, it keeps the comparison in the confidences' dtype."""
    value = threshold.item() if isinstance(threshold, np.generic | np.ndarray) else threshold
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"an exit threshold must be a number, got {threshold!r}")
    return value
