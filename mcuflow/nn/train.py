"""Joint training of a SplitNet: ``sum_e w_e * CE(exit_e) + w_final * CE(final)``.

With a teacher (``distill_weight`` alpha > 0 and teacher logits for the training inputs)
every head's term becomes ``(1 - alpha) * CE + alpha * T^2 * KL(teacher/T || head/T)``
(see :mod:`mcuflow.nn.distill`).

The whole dataset sits in memory as one tensor and batches are slices of a
seeded permutation: on MNIST-sized MLPs a DataLoader only adds overhead.
Given the same seed, data and thread count, a run is bit-for-bit repeatable.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mcuflow.atomic import atomic_output
from mcuflow.errors import ConfigError
from mcuflow.nn.config import ModelConfig, build_model, count_parameters
from mcuflow.nn.distill import distill_loss
from mcuflow.nn.foldnorm import FoldableNorms
from mcuflow.nn.sparse import SparseLinear
from mcuflow.nn.split import SplitNet
from mcuflow.progress import progress

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")


@dataclass
class TrainConfig:
    """How to train; ``exit_weights`` defaults to 1.0 per exit."""

    epochs: int = 100
    batch_size: int = 256
    lr: float = 3e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    exit_weights: list[float] | None = None
    final_weight: float = 1.0
    threads: int | None = None
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    batchnorm: bool = False  # train with BatchNorm on hidden junctions, folded into them at the end

    def validate(self, n_exits: int) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown lr schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ConfigError(f"distillation weight must be between 0 and 1, got {self.distill_weight}")
        if not self.distill_temperature > 0 or not math.isfinite(self.distill_temperature):
            raise ConfigError(f"distillation temperature must be positive, got {self.distill_temperature}")
        weights = self.loss_weights(n_exits)[0]
        if len(weights) != n_exits:
            raise ConfigError(f"{len(weights)} exit loss weights given for {n_exits} exits")
        if any(w < 0 for w in [*weights, self.final_weight]) or sum(weights) + self.final_weight <= 0:
            raise ConfigError("loss weights must be non-negative and not all zero")

    def loss_weights(self, n_exits: int) -> tuple[list[float], float]:
        exits = [1.0] * n_exits if self.exit_weights is None else list(self.exit_weights)
        return exits, self.final_weight


@dataclass
class TrainResult:
    model: SplitNet
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def set_threads(threads: int | None) -> None:
    # One thread by default: these layers are so small that intra-op threading
    # costs more than it gains, and on a loaded machine two spinning threads
    # made a 20-epoch run 8x slower (147 s against 18 s for one thread).
    torch.set_num_threads(max(1, threads or 1))


def _optimizer(model: nn.Module, cfg: TrainConfig, extra: Sequence[nn.Parameter] = ()) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad] + list(extra)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)


def _lr_factor(cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if cfg.schedule == "step":
        return lambda step: 0.1 ** sum(step >= total_steps * f for f in (0.5, 0.75))
    return lambda step: 1.0


@torch.no_grad()
def evaluate(model: SplitNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> dict[str, Any]:
    """Accuracy of every exit and of the final output on ``(x, y)``."""
    was_training = model.training
    model.eval()
    exit_correct = [0] * len(model.exits)
    final_correct = 0
    for i in range(0, len(y), batch_size):
        exits, final = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        final_correct += int((final.argmax(1) == yb).sum())
        for e, logits in enumerate(exits):
            exit_correct[e] += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(1, len(y))
    return {"final": final_correct / n, "exits": [c / n for c in exit_correct], "samples": len(y)}


@torch.no_grad()
def predict(model: SplitNet, x: torch.Tensor, batch_size: int = 2000) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Logits of every exit and of the final output, for all of ``x``."""
    model.eval()
    exits: list[list[torch.Tensor]] = [[] for _ in model.exits]
    finals = []
    for i in range(0, len(x), batch_size):
        ex, fin = model(x[i : i + batch_size])
        for e, logits in enumerate(ex):
            exits[e].append(logits)
        finals.append(fin)
    return [torch.cat(e) for e in exits], torch.cat(finals) if finals else torch.empty(0)


def junction_report(model: SplitNet) -> list[dict[str, Any]]:
    """Per junction of the main path: sizes, degrees, edges and density."""
    rows = []
    layers = [m for m in [*model.head, *model.tail] if isinstance(m, (SparseLinear, nn.Linear))]
    for j, layer in enumerate(layers, start=1):
        if isinstance(layer, SparseLinear):
            n_in, n_out, d_out, d_in = layer.in_features, layer.out_features, layer.out_degree, layer.in_degree
            pattern = layer.pattern
        else:
            n_in, n_out, d_out, d_in, pattern = (
                layer.in_features,
                layer.out_features,
                layer.out_features,
                layer.in_features,
                "dense",
            )
        edges = n_out * d_in
        rows.append(
            {
                "junction": j,
                "in": n_in,
                "out": n_out,
                "out_degree": d_out,
                "in_degree": d_in,
                "edges": edges,
                "biases": n_out,
                "density": edges / (n_in * n_out),
                "pattern": pattern,
                "on_device": j <= _head_junctions(model),
            }
        )
    return rows


def _training_record(cfg: TrainConfig) -> dict[str, Any]:
    record = asdict(cfg) | {"threads": torch.get_num_threads()}
    # runs without these options record what they always did
    if not cfg.distill_weight:
        del record["distill_weight"], record["distill_temperature"]
    if not cfg.batchnorm:
        del record["batchnorm"]
    return record


def _head_junctions(model: SplitNet) -> int:
    return sum(isinstance(m, (SparseLinear, nn.Linear)) for m in model.head)


def parameter_report(model: SplitNet) -> dict[str, Any]:
    head, tail = count_parameters(model.head), count_parameters(model.tail)
    exits = [count_parameters(e) for e in model.exits]
    return {"main_path": head + tail, "head": head, "tail": tail, "exits": exits, "total": head + tail + sum(exits)}


def train(
    model: SplitNet,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    test_xy: tuple[torch.Tensor, torch.Tensor] | None,
    cfg: TrainConfig,
    show_progress: bool = True,
    eval_every_epoch: bool = True,
    teacher_logits: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns it with metrics (test metrics when ``test_xy`` is given).

    ``teacher_logits`` (one row per training input) are the distillation targets; they are
    used when ``cfg.distill_weight`` is above 0, which requires them."""
    cfg.validate(len(model.exits))
    set_threads(cfg.threads)
    x, y = train_xy
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"training data has {len(x)} inputs and {len(y)} labels")
    alpha, temperature = cfg.distill_weight, cfg.distill_temperature
    if alpha > 0:
        if teacher_logits is None:
            raise ConfigError("a distillation weight above 0 needs a teacher")
        if teacher_logits.dim() != 2 or len(teacher_logits) != len(x):
            raise ConfigError(f"teacher logits {tuple(teacher_logits.shape)} do not match {len(x)} training inputs")
        teacher_logits = teacher_logits.detach().float()
    ce = nn.CrossEntropyLoss()

    def head_loss(logits: torch.Tensor, yb: torch.Tensor, tb: torch.Tensor | None) -> torch.Tensor:
        if tb is None:
            return ce(logits, yb)
        return (1.0 - alpha) * ce(logits, yb) + alpha * distill_loss(logits, tb, temperature)

    exit_w, final_w = cfg.loss_weights(len(model.exits))
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    norms = FoldableNorms(model) if cfg.batchnorm else None
    opt = _optimizer(model, cfg, norms.parameters() if norms else [])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg, total))
    history: list[dict[str, Any]] = []
    start = time.monotonic()
    model.train()
    with progress(total, "train", enabled=show_progress) as bar:
        for epoch in range(1, cfg.epochs + 1):
            perm = torch.randperm(len(x), generator=gen)
            running, seen = 0.0, 0
            for i in range(0, len(x), cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                xb, yb = x[idx], y[idx]
                tb = teacher_logits[idx] if alpha > 0 else None  # type: ignore[index]
                exits, final = model(xb)
                loss = final_w * head_loss(final, yb, tb)
                for w, logits in zip(exit_w, exits, strict=True):
                    if w:
                        loss = loss + w * head_loss(logits, yb, tb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                running += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.update(1, epoch=epoch, loss=running / seen)
            if norms is not None and epoch == cfg.epochs:
                norms.fold()  # the last evaluation already sees the plain model that is saved
            entry: dict[str, Any] = {"epoch": epoch, "loss": running / seen, "time_s": time.monotonic() - start}
            if test_xy is not None and (eval_every_epoch or epoch == cfg.epochs):
                acc = evaluate(model, *test_xy)
                entry.update(test_final=acc["final"], test_exits=acc["exits"])
                bar.set(acc=acc["final"])
            history.append(entry)
    wall = time.monotonic() - start
    model.eval()
    metrics: dict[str, Any] = {
        "model": model.config.to_dict() if hasattr(model, "config") else None,
        "training": _training_record(cfg),
        "params": parameter_report(model),
        "junctions": junction_report(model),
        "train_samples": len(x),
        "train_time_s": round(wall, 2),
        "final_loss": history[-1]["loss"],
    }
    if test_xy is not None:
        acc = evaluate(model, *test_xy)
        metrics["accuracy"] = {"final": acc["final"], "exits": acc["exits"]}
        metrics["test_samples"] = acc["samples"]
    return TrainResult(model, metrics, history)


def build_and_train(
    config: ModelConfig,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    test_xy: tuple[torch.Tensor, torch.Tensor] | None,
    cfg: TrainConfig,
    show_progress: bool = True,
    eval_every_epoch: bool = True,
    teacher_logits: torch.Tensor | None = None,
) -> TrainResult:
    """Seed the weight initialisation with ``cfg.seed``, build ``config``, train it."""
    torch.manual_seed(cfg.seed)
    model = build_model(config)
    return train(
        model,
        train_xy,
        test_xy,
        cfg,
        show_progress=show_progress,
        eval_every_epoch=eval_every_epoch,
        teacher_logits=teacher_logits,
    )


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically (temp file, then rename)."""
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return Path(path)
