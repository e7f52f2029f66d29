"""Fine-tuning the tail with link compression in the loop.

The head and exits stay frozen, so the export's int8 head (and its calibration, scale and
exits) is unchanged and the device sends exactly what the numpy reference predicts. The
tail is then trained on what it will really receive: the int8 reference's head output of
every training image, pruned, narrowed and dequantised by the export's link settings
(:func:`mcuflow.reference.link_offload`). Because the pruning runs in the bit-exact
reference, there is nothing to approximate (no straight-through estimator is needed: no
gradient flows into the frozen head).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuflow.errors import ConfigError


CHUNK = 5000


@dataclass
class FinetuneResult:
    model: object  # SplitNet with the fine-tuned tail
    link: dict  # the LinkConfig fields the tail was trained for
    history: list[dict]
    seconds: float


def link_inputs(export_dir: Path, images: np.ndarray, cfg) -> np.ndarray:
    """Dequantised, link-compressed intermediates of uint8 images (N, 28, 28) as the host receives them."""
    from mcuflow import reference

    q = reference.load_export(export_dir)
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
    log=None,
) -> FinetuneResult:
    """Fine-tune CHECKPOINT's tail for the given link settings; the head and exits are frozen.

    ``offload_weight`` scales the loss of training images the device would offload (the ones
    the tail actually sees at run time) relative to those it answers at an exit.
    """
    import torch

    import mcuflow
    from mcuflow import export as exporter
    from mcuflow.data import load_mnist
    from mcuflow.linkopt.config import link_from_export

    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if offload_weight < 0:
        raise ConfigError(f"--offload-weight must be >= 0, got {offload_weight}")
    t0 = time.perf_counter()
    model = mcuflow.load(checkpoint)
    if getattr(model, "tail", None) is None or len(model.tail) == 0:
        raise ConfigError(f"{checkpoint} has no tail to fine-tune")
    with tempfile.TemporaryDirectory(prefix="mcuflow-finetune-") as tmp:
        export_dir = Path(tmp) / "export"
        exporter.export(
            checkpoint,
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
        train = load_mnist("train", data_dir, download=False).subset(limit)
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
    history = []
    model.tail.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        total, seen, correct = 0.0, 0, 0
        for i in range(0, len(xt), batch_size):
            idx = order[i : i + batch_size]
            logits = model.tail(xt[idx])
            loss_each = torch.nn.functional.cross_entropy(logits, y[idx], reduction="none")
            loss = (loss_each * w[idx]).sum() / w[idx].sum().clamp_min(1e-6)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            seen += len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        history.append({"epoch": epoch + 1, "loss": total / seen, "train_accuracy": correct / seen})
        if log is not None:
            log(f"finetune-link: epoch {epoch + 1}/{epochs} loss {total / seen:.4f} train acc {correct / seen:.4f}")
    model.tail.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return FinetuneResult(model, cfg.as_dict(), history, time.perf_counter() - t0)
