"""Fine-tuning with link compression in the loop, in two stages.

1. ``head_epochs`` > 0: the whole network (head, exits, tail) is trained jointly, the tail
   reading the head output through a differentiable model of the device's link: per-sample
   top-k and threshold masks (gradients flow through the kept elements only) and fake
   quantisation to the int8 grid and then to the narrow codes (straight-through rounding).
   The head learns to put what the tail needs into the few values that survive.
2. The head and exits are frozen and the tail is trained on exactly what it will receive:
   the int8 reference's head output of every training image, pruned, narrowed and
   dequantised by the export's link settings (:func:`mcuflow.reference.link_offload`),
   which is bit-exact with the device.

With ``tail_hidden`` the checkpoint's tail is first replaced by a freshly initialised fully
connected one (``ModelConfig.tail_hidden``): the tail runs on the host, so it need not keep the
device's predefined sparsity (the paper's first tail junction reads 9 of the 40 values per neuron),
and a dense, wider tail recovers more from the few coarse values the link sends.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuflow import exitrule
from mcuflow.errors import ConfigError

CHUNK = 5000
RECALIBRATE_EVERY = 20  # steps between refreshes of the simulated int8 range (the export calibrates on train[:N])


@dataclass
class FinetuneResult:
    model: object  # SplitNet with the fine-tuned tail
    link: dict  # the LinkConfig fields the tail was trained for
    history: list[dict]
    seconds: float


def link_inputs(export_dir: Path, images: np.ndarray, cfg) -> np.ndarray:
    """Dequantised, link-compressed intermediates of uint8 images (N, 28, 28) as the host receives them."""
    from mcuflow import reference
    from mcuflow.manifest import load_model

    q = load_model(export_dir)
    xs, exited = [], []
    for i in range(0, len(images), CHUNK):  # the reference gathers (N, n_out, degree) int64: bound N
        ref = reference.run(q, reference.pixels_to_input(images[i : i + CHUNK]))
        link = reference.link_offload(ref.intermediate, float(q.intermediate_scale), int(q.intermediate_zp), cfg)
        xs.append(link.dequantize())
        exited.append(ref.exited.astype(bool))
    return np.concatenate(xs), np.concatenate(exited)


def finetune_link(
    checkpoint: str | os.PathLike,
    *,
    prune_threshold: int = 0,
    prune_topk: int = 0,
    link_bits: int = 8,
    link_shift: int | None = None,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 256,
    offload_weight: float = 1.0,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    calibration_samples: int = 1000,
    exit_threshold: float | None = None,
    seed: int = 0,
    head_epochs: int = 0,
    head_lr: float = 1e-3,
    distill: float = 0.0,
    act_l1: float = 0.0,
    tail_hidden: list[int] | None = None,
    log=None,
) -> FinetuneResult:
    """Fine-tune CHECKPOINT for the given link settings (stages in the module docstring).

    ``offload_weight`` scales the loss of training images the device would offload (the ones
    the tail actually sees at run time) relative to those it answers at an exit.
    ``tail_hidden`` (widths, possibly empty) replaces the tail by a dense one trained from scratch.
    """
    import torch

    import mcuflow
    from mcuflow import export as exporter
    from mcuflow.data import load_mnist
    from mcuflow.manifest import link_config as link_from_export

    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if offload_weight < 0:
        raise ConfigError(f"--offload-weight must be >= 0, got {offload_weight}")
    if head_epochs < 0:
        raise ConfigError(f"--head-epochs must be >= 0, got {head_epochs}")
    t0 = time.perf_counter()
    model = mcuflow.load(checkpoint)
    if getattr(model, "tail", None) is None or len(model.tail) == 0:
        raise ConfigError(f"{checkpoint} has no tail to fine-tune")
    teacher = None
    if tail_hidden is not None:
        if distill and head_epochs:
            teacher = copy.deepcopy(model).eval()  # distil from the trained tail, not the fresh one
        torch.manual_seed(seed)
        replace_tail(model, tail_hidden)
    history: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mcuflow-finetune-") as tmp:
        train = load_mnist("train", data_dir, download=False).subset(limit)
        source = checkpoint
        if head_epochs:
            export_dir = Path(tmp) / "export0"
            exporter.export(
                checkpoint,
                export_dir,
                calibration_samples=calibration_samples,
                data_dir=data_dir,
                prune_threshold=prune_threshold,
                prune_topk=prune_topk,
                link_bits=link_bits,
                link_shift=link_shift,
            )
            cfg0 = link_from_export(export_dir)
            threshold = exporter.DEFAULT_EXIT_THRESHOLD if exit_threshold is None else exit_threshold
            history += train_head(
                model,
                train,
                cfg0,
                head_epochs,
                head_lr,
                batch_size,
                seed,
                log,
                offload_weight,
                threshold,
                distill,
                act_l1,
                calibration_samples,
                teacher,
            )
            source = Path(tmp) / "stage1.pt"
            mcuflow.save(model, source)
        export_dir = Path(tmp) / "export"
        exporter.export(
            source,
            export_dir,
            exit_threshold=exporter.DEFAULT_EXIT_THRESHOLD if exit_threshold is None else exit_threshold,
            calibration_samples=calibration_samples,
            data_dir=data_dir,
            prune_threshold=prune_threshold,
            prune_topk=prune_topk,
            link_bits=link_bits,
            link_shift=link_shift,
        )
        cfg = link_from_export(export_dir)
        x, exited = link_inputs(export_dir, train.images, cfg)
    y = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    w = torch.from_numpy(np.where(exited, 1.0, offload_weight).astype(np.float32))
    xt = torch.from_numpy(x)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for p in model.tail.parameters()]
    for p in params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr)
    steps = epochs * ((len(xt) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.tail.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        tally = _Tally()
        for i in range(0, len(xt), batch_size):
            idx = order[i : i + batch_size]
            logits = model.tail(xt[idx])
            loss_each = torch.nn.functional.cross_entropy(logits, y[idx], reduction="none")
            loss = (loss_each * w[idx]).sum() / w[idx].sum().clamp_min(1e-6)
            _step(opt, sched, loss)
            tally.add(loss, logits, y[idx])
        tally.close_epoch(history, "tail", epoch, epochs, log, "train acc")
    model.tail.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return FinetuneResult(model, cfg.as_dict(), history, time.perf_counter() - t0)


def replace_tail(model, tail_hidden: list[int]) -> None:
    """Give ``model`` a freshly initialised dense tail ``n -> *tail_hidden -> classes`` (config updated)."""
    import dataclasses

    from mcuflow.nn.config import build_tail

    if any(int(h) < 1 for h in tail_hidden):
        raise ConfigError(f"--tail-hidden widths must be positive, got {','.join(map(str, tail_hidden))}")
    if getattr(model, "config", None) is None:
        raise ConfigError("--tail-hidden rebuilds the tail from the model's ModelConfig, and this model has none")
    config = dataclasses.replace(model.config, tail_hidden=[int(h) for h in tail_hidden])
    config.validate()
    model.tail = build_tail(config)
    model.config = config


class LinkSimulator:
    """A differentiable model of the device's link for training: int8 grid, pruning, narrow codes.

    The int8 scale follows the export's min/max calibration: ``hmax`` / 255, with ``hmax`` the
    head output's maximum over the calibration images (refreshed during training by
    :func:`train_head`; before the first refresh, a moving average of batch maxima). The shift
    is the export's.
    """

    def __init__(self, cfg, momentum: float = 0.05):
        self.cfg = cfg
        self.momentum = momentum
        self.hmax: float | None = None
        self.calibrated = False

    def __call__(self, h):
        import torch

        cfg = self.cfg
        if self.hmax is None:
            self.hmax = float(h.detach().max())
        elif not self.calibrated:
            self.hmax = (1 - self.momentum) * self.hmax + self.momentum * float(h.detach().max())
        scale = max(self.hmax, 1e-6) / 255.0
        d = torch.clamp(torch.round(h.detach() / scale), -255, 255)  # q - zp on the int8 grid
        mag = d.abs()
        keep = mag > cfg.threshold
        if cfg.topk and cfg.topk < h.shape[1]:
            ranked = torch.where(keep, mag, torch.zeros_like(mag))
            # ties broken by index, as on the device: a tiny index-dependent penalty
            ranked = ranked - torch.arange(h.shape[1], dtype=h.dtype) * 1e-6
            top = ranked.topk(cfg.topk, dim=1).indices
            sel = torch.zeros_like(keep)
            sel.scatter_(1, top, True)
            keep = keep & sel
        step = scale * (2.0**cfg.shift if cfg.bits < 8 else 1.0)
        levels = (1 << cfg.bits) - 1 if cfg.bits < 8 else 255
        hq = torch.clamp(torch.round(h / step), 0, levels) * step
        hq = h + (hq - h).detach()  # straight-through rounding
        return hq * keep.to(h.dtype)


def train_head(
    model,
    train,
    cfg,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    log,
    offload_weight: float = 1.0,
    exit_threshold: float = 0.9,
    distill: float = 0.0,
    act_l1: float = 0.0,
    calibration_samples: int = 1000,
    teacher=None,
) -> list[dict]:
    """Stage 1: joint exit + final loss, the tail reading the head through :class:`LinkSimulator`.

    The tail's loss on images no exit is confident about (max softmax below ``exit_threshold``:
    the ones the device offloads) is weighted by ``offload_weight``. ``distill`` adds the KL
    divergence to the unpruned model's tail (temperature 2), ``act_l1`` an L1 penalty on the head
    output that makes it sparser (fewer values to send). ``teacher`` (default: a copy of
    ``model`` as it enters) is the model distilled from."""
    import torch

    from mcuflow.data import to_tensors

    x, y = to_tensors(train.images, train.labels)
    sim = LinkSimulator(cfg)
    if distill and teacher is None:
        teacher = copy.deepcopy(model).eval()
    elif not distill:
        teacher = None
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    history = []
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        tally = _Tally()
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            if (i // batch_size) % RECALIBRATE_EVERY == 0:
                with torch.no_grad():
                    sim.hmax = float(model.run_head(x[:calibration_samples]).max())
                    sim.calibrated = True
            h, exits = x[idx], [None] * len(model.exits)
            for j, layer in enumerate(model.head, start=1):  # as SplitNet.forward, exits see the unpruned head
                h = layer(h)
                for e, at in enumerate(model.exit_points):
                    if at == j:
                        exits[e] = model.exits[e](h)
            logits = model.run_tail(sim(h))
            w = torch.ones(len(idx))
            if exits and offload_weight != 1.0:
                offloaded = ~_exited(exits, exit_threshold, model.exit_points)
                w = torch.where(offloaded, torch.full_like(w, offload_weight), w)
            loss_each = torch.nn.functional.cross_entropy(logits, y[idx], reduction="none")
            loss = (loss_each * w).sum() / w.sum()
            for e in exitrule.device_order(model.exit_points):  # summed in the order they were computed
                loss = loss + torch.nn.functional.cross_entropy(exits[e], y[idx])
            if teacher is not None:
                with torch.no_grad():
                    t_final = teacher(x[idx])[1]
                kl = _kl(logits, t_final)
                loss = loss + distill * 4.0 * (kl * w).sum() / w.sum()
            if act_l1:
                loss = loss + act_l1 * h.abs().mean()
            _step(opt, sched, loss)
            tally.add(loss, logits, y[idx])
        tally.close_epoch(history, "head", epoch, epochs, log, "tail acc")
    model.eval()
    return history


def _exited(exit_logits: list, exit_threshold: float, exit_points: list[int]):
    """Which samples the device would answer at an exit (max softmax, the device's rule): a bool tensor."""
    import torch

    conf = [torch.softmax(e.detach(), 1).max(1).values.numpy() for e in exit_logits]
    decision = exitrule.decide(conf, exit_threshold, attach=exit_points)
    return torch.from_numpy(decision.exited)


def _step(opt, sched, loss) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


class _Tally:
    """Mean loss and accuracy of one training epoch, recorded and logged at its end."""

    def __init__(self) -> None:
        self.total, self.seen, self.correct = 0.0, 0, 0

    def add(self, loss, logits, labels) -> None:
        self.total += float(loss.detach()) * len(labels)
        self.seen += len(labels)
        self.correct += int((logits.argmax(1) == labels).sum())

    def close_epoch(self, history: list, stage: str, epoch: int, epochs: int, log, acc_name: str) -> None:
        loss, acc = self.total / self.seen, self.correct / self.seen
        history.append({"stage": stage, "epoch": epoch + 1, "loss": loss, "train_accuracy": acc})
        if log is not None:
            where = "" if stage == "tail" else f"{stage} "
            log(f"finetune-link: {where}epoch {epoch + 1}/{epochs} loss {loss:.4f} {acc_name} {acc:.4f}")


def _kl(student, teacher, temperature: float = 2.0):
    """Per-sample KL(teacher || student) of temperature-softened logits."""
    import torch

    soft = torch.softmax(teacher / temperature, 1)
    return torch.nn.functional.kl_div(torch.log_softmax(student / temperature, 1), soft, reduction="none").sum(1)
