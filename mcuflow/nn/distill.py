"""Knowledge distillation for ``mcuflow train``: a larger teacher's softened outputs as extra targets.

The teacher is fixed while the student trains, so its logits are computed once for every
training input (one forward pass) and the training loop only slices them like the labels.
A teacher is either

* ``dense:H[,H...]``: a fully connected ReLU MLP ``inputs -> H ... -> classes`` trained
  here first (seeded, deterministic), or
* the path of an mcuflow checkpoint: its final output is the teacher.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.nn.structure import capture, input_features


@dataclass(frozen=True)
class TeacherSpec:
    """``hidden`` set: train a dense MLP with these widths; otherwise load ``checkpoint``."""

    hidden: tuple[int, ...] | None = None
    checkpoint: Path | None = None

    def describe(self) -> str:
        if self.hidden is not None:
            return "dense:" + ",".join(str(h) for h in self.hidden)
        return str(self.checkpoint)


def parse_teacher(text: str) -> TeacherSpec:
    """``dense:256`` or ``dense:512,512`` (an MLP trained first) or a checkpoint path."""
    text = text.strip()
    if text.lower().startswith("dense:"):
        try:
            hidden = tuple(int(v) for v in text[len("dense:") :].split(",") if v.strip())
        except ValueError:
            hidden = ()
        if not hidden or any(h < 1 for h in hidden):
            raise ConfigError(f"teacher {text!r}: give hidden widths as positive integers, e.g. dense:256")
        return TeacherSpec(hidden=hidden)
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"teacher {text!r} is neither dense:H[,H...] nor an existing checkpoint file")
    return TeacherSpec(checkpoint=path)


def dense_teacher(n_in: int, hidden: tuple[int, ...], n_classes: int) -> nn.Sequential:
    widths = [n_in, *hidden, n_classes]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_dense_teacher(
    hidden: tuple[int, ...],
    train_xy: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 10,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 128,
) -> nn.Sequential:
    """A dense MLP trained with Adam and cosine decay; same seed and data give the same teacher."""
    if epochs < 1:
        raise ConfigError(f"teacher epochs must be at least 1, got {epochs}")
    x, y = train_xy
    n_classes = int(y.max()) + 1
    torch.manual_seed(seed)
    model = dense_teacher(x.shape[1], hidden, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """The final logits of a plain module or of a SplitNet (whose forward returns ``(exits, final)``)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        y = model(x[i : i + batch_size])
        out.append(y[1] if isinstance(y, tuple) else y)
    model.train(was_training)
    return torch.cat(out)


def teacher_logits(
    spec: TeacherSpec,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    epochs: int = 10,
    seed: int = 0,
    checkpoint_model: nn.Module | None = None,
) -> tuple[torch.Tensor, dict]:
    """The teacher's logits for every training input, and what to record about the teacher.

    A checkpoint teacher arrives loaded (``checkpoint_model``): the checkpoint format sits above ``nn``."""
    x, y = train_xy
    start = time.monotonic()
    if spec.hidden is not None:
        model = train_dense_teacher(spec.hidden, train_xy, epochs=epochs, seed=seed)
        info = {"teacher": spec.describe(), "teacher_epochs": epochs}
    else:
        if checkpoint_model is None:
            raise ConfigError(f"teacher {spec.checkpoint}: load the checkpoint and pass it as checkpoint_model")
        model = checkpoint_model
        cfg = getattr(model, "config", None)
        n_in = (cfg.input_size or cfg.sizes[0]) if cfg is not None else input_features(capture(model))
        if n_in != x.shape[1]:
            raise ConfigError(
                f"teacher {spec.checkpoint} takes {n_in} inputs but the training images have {x.shape[1]}"
            )
        info = {"teacher": spec.describe()}
    logits = logits_of(model, x)
    if logits.shape[1] <= int(y.max()):
        raise ConfigError(f"teacher has {logits.shape[1]} outputs but the labels go up to {int(y.max())}")
    info["teacher_train_accuracy"] = float((logits.argmax(1) == y).float().mean())
    info["teacher_time_s"] = round(time.monotonic() - start, 2)
    return logits, info


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``: T^2 keeps its gradient on the scale of CE's."""
    t = temperature
    return (
        F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean", log_target=True)
        * t
        * t
    )
