"""What ``mcuflow plan`` searches: one :class:`Candidate` (a model config, its exit threshold and its link
settings), drawn from a search space by an Optuna trial.

:class:`MlpSpace` is the MLP space: device depth, hidden widths, whether the whole model runs on the device
(else the split after the device layers, with a dense host tail), the out-degree of every device junction
(searched per junction in ``plain`` mode, or allocated by PA/FA/MA from one pruning level), exit placement
and branch width, exit threshold, link pruning and bit width. A CNN space is another class with the same
``suggest(trial, mode) -> Candidate`` and ``dims(candidate)`` (the layer widths complexity is counted on).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mcuflow.plan import complexity

SPARSITY_MODES = ("plain", *complexity.MODES)


@dataclass(frozen=True)
class Candidate:
    """A model config (``ModelConfig.to_dict()``) and the export settings it is deployed with."""

    model: dict[str, Any]
    exit_threshold: float = 0.9
    link_bits: int = 8
    prune_threshold: int = 0

    def config(self):
        from mcuflow.nn.config import ModelConfig

        return ModelConfig.from_dict(self.model)

    def describe(self) -> str:
        m = self.model
        where = "whole on device" if m["split"] == len(m["sizes"]) - 1 else f"split {m['split']}"
        tail = "" if m.get("tail_hidden") is None else f", host tail {m['tail_hidden'] or 'linear'}"
        exits = ",".join(f"@{e['at']}" + (f"h{e['hidden']}" if e["hidden"] else "") for e in m["exits"]) or "none"
        link = "" if m["split"] == len(m["sizes"]) - 1 else f", link {self.link_bits}b prune {self.prune_threshold}"
        return f"{m['sizes']} deg {m['out_degrees']} {where}{tail}, exits {exits} t={self.exit_threshold:.2f}{link}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def config_hash(model: dict[str, Any], recipe: dict[str, Any], data_id: str) -> str:
    """The trained candidate's identity: what is trained, how, on which data (seeds are in both)."""
    blob = json.dumps({"model": model, "recipe": recipe, "data": data_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def nearest_degree(n_in: int, n_out: int, density: float) -> int:
    """The out-degree closest to ``density * n_out`` whose in-degree is whole (n_out always is)."""
    want = min(max(density * n_out, 1.0), float(n_out))
    valid = [d for d in range(1, n_out + 1) if (n_in * d) % n_out == 0]
    return min(valid, key=lambda d: (abs(math.log(d / want)), d))


@dataclass
class MlpSpace:
    """The MLP search space; every choice is a named Optuna parameter."""

    input_width: int
    n_classes: int
    widths: tuple[int, ...] = (16, 20, 25, 32, 40, 50, 64, 80)
    max_device_layers: int = 2
    exit_hidden: tuple[int, ...] = (0, 16, 32)
    tail_hidden: tuple[str, ...] = ("none", "64", "128")
    link_bits: tuple[int, ...] = (8, 6, 4)
    prune_thresholds: tuple[int, ...] = (0, 1, 2, 4)
    min_density: float = 0.01
    threshold_range: tuple[float, float] = (0.5, 0.99)
    pattern_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def padded_input(self) -> int:
        """The first width: the input zero-padded up to a multiple of 40 (MNIST 784 -> 800, as the paper)."""
        return -(-self.input_width // 40) * 40 if self.input_width > 40 else self.input_width

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d

    def suggest(self, trial, mode: str) -> Candidate:
        if mode not in SPARSITY_MODES:
            raise ValueError(f"unknown sparsity mode {mode!r}")
        k = trial.suggest_int("device_layers", 1, self.max_device_layers)
        hidden = [trial.suggest_categorical(f"width{i + 1}", list(self.widths)) for i in range(k)]
        whole = trial.suggest_categorical("whole_on_device", [False, True])
        sizes = [self.padded_input, *hidden, self.n_classes]
        device = k + 1 if whole else k  # junctions on the device
        if mode == "plain":
            dens = [trial.suggest_float(f"density{j + 1}", self.min_density, 1.0, log=True) for j in range(device)]
        else:
            # the kept fraction of the largest layer, drawn as plain mode draws each junction's density
            keep = trial.suggest_float("keep_largest", self.min_density, 1.0, log=True)
            dens = complexity.allocate(mode, sizes[: device + 1], 1.0 - keep)
        degrees = [nearest_degree(sizes[j], sizes[j + 1], dens[j]) for j in range(device)]
        degrees += [sizes[j + 1] for j in range(device, len(sizes) - 1)]  # the host tail is dense
        exit_at = trial.suggest_int("exit_at", 0, k)  # 0: no exit; a whole model's final layer answers anyway
        exits = []
        if exit_at:
            h = trial.suggest_categorical("exit_hidden", list(self.exit_hidden))
            exits = [{"at": exit_at, "hidden": [h] if h else []}]
        threshold = trial.suggest_float("exit_threshold", *self.threshold_range) if exits else 0.9
        bits, prune, tail = 8, 0, None
        if not whole:
            t = trial.suggest_categorical("tail_hidden", list(self.tail_hidden))
            tail = [] if t == "none" else [int(v) for v in t.split("+")]
            bits = trial.suggest_categorical("link_bits", list(self.link_bits))
            prune = trial.suggest_categorical("prune_threshold", list(self.prune_thresholds))
        model = {
            "sizes": sizes,
            "out_degrees": degrees,
            "family": "sparse",
            "pattern": "structured",
            "seed": self.pattern_seed,
            "split": device,
            "exits": exits,
            "input_size": self.input_width if self.input_width < sizes[0] else None,
        }
        if tail is not None:
            model["tail_hidden"] = tail
        cand = Candidate(model=model, exit_threshold=round(threshold, 4), link_bits=bits, prune_threshold=prune)
        cand.config()  # every drawn candidate is a valid config
        return cand
