"""``mcuflow link-sweep``: bytes on the link against end-to-end accuracy for a grid of
pruning thresholds, top-k and bit widths, computed with the numpy int8 reference
(bit-exact with the device) and the host tail; a CSV, a Pareto table and a plot.

Compression factors compare the encoded tensor (the OFFLOAD body) with the same tensor
sent dense as float32 (the baseline of Haberer and Landsiedel, 4 bytes a value) and as
int8; the ``wire_*`` columns compare whole frames on the wire (16-byte OFFLOAD header,
frame header, CRC, COBS and delimiter included).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuflow import atomic
from mcuflow.codec.compress import FLOAT32_BYTES, LinkConfig, link_scale
from mcuflow.errors import ConfigError
from mcuflow.link.messages import OFFLOAD_FIXED_LEN, offload_wire_bytes
from mcuflow.npz import read_npz
from mcuflow.passes.link_compression import resolve_link

DEFAULT_THRESHOLDS = (0, 4, 8, 16, 32, 48, 64)
DEFAULT_TOPKS = (0, 16, 12, 10, 8, 6, 5, 4, 3, 2)
DEFAULT_BITS = (8, 6, 4, 3, 2)
COLUMNS = (
    "label",
    "threshold",
    "topk",
    "bits",
    "shift",
    "code_zp",
    "accuracy",
    "accuracy_loss_points",
    "offload_accuracy",
    "offload_rate",
    "tensor_bytes",
    "payload_bytes",
    "wire_bytes",
    "compression_vs_float32",
    "compression_vs_int8",
    "wire_compression_vs_float32",
    "wire_compression_vs_int8",
    "kept_values",
    "enc_dense",
    "enc_bitmap",
    "enc_index_value",
    "enc_zero_runs",
    "pareto",
)


@dataclass
class SweepContext:
    """Everything a grid point needs, computed once: the reference head outputs and the tail."""

    q: object  # QModel
    export_dir: Path
    intermediate: np.ndarray  # int8 (N, n): head outputs of the evaluation samples
    exited: np.ndarray  # bool (N,)
    exit_label: np.ndarray  # (N,)
    labels: np.ndarray  # (N,)
    calibration_intermediate: np.ndarray  # int8: head outputs of the calibration images (auto shift)
    tail: dict
    scale: float
    zero_point: int
    source: str

    @property
    def n(self) -> int:
        return int(self.intermediate.shape[1])


def prepare(
    checkpoint: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    samples: int | None = None,
    exit_threshold: float | None = None,
    calibration_samples: int = 1000,
    split: str = "test",
    workdir: str | os.PathLike | None = None,
) -> SweepContext:
    """Export once (dense link) and run the int8 reference on ``samples`` samples of ``split`` of ``data``
    (the user's) or MNIST, normalised as the checkpoint records and quantised with the export's input
    scale and zero point."""
    from mcuflow import export as exporter
    from mcuflow import reference
    from mcuflow.checkpoint import load
    from mcuflow.data import DataRecord, load_data, mnist_split

    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mcuflow-link-sweep-"))
    threshold = exporter.DEFAULT_EXIT_THRESHOLD if exit_threshold is None else exit_threshold
    res = exporter.export(
        checkpoint,
        work / "export",
        exit_threshold=threshold,
        calibration_samples=calibration_samples,
        data_dir=data_dir,
        data=data,
    )
    q = res.model
    record = DataRecord.from_meta(load(checkpoint).meta, str(checkpoint))
    if data is not None:
        evaluated = load_data(data).for_model(split, record)
    else:
        evaluated = mnist_split(split, data_dir, download=False, record=record)
    if samples is not None:
        if samples <= 0 or samples > len(evaluated):
            raise ConfigError(f"--samples must be in 1..{len(evaluated)}, got {samples}")
        evaluated = evaluated.head(samples)
    ref = reference.run(q, reference.quantize_input(evaluated.inputs(np.float64), q.input_scale, q.input_zp))
    calib = exporter.calibration_inputs(calibration_samples, data_dir, data, record).x
    calib_ref = reference.run(q, reference.quantize_input(calib, q.input_scale, q.input_zp))
    tail = read_npz(work / "export" / "tail.npz", "the tail weights")
    return SweepContext(
        q=q,
        export_dir=work / "export",
        intermediate=ref.intermediate,
        exited=ref.exited.astype(bool),
        exit_label=ref.label,
        labels=np.asarray(evaluated.y, dtype=np.int64),
        calibration_intermediate=calib_ref.intermediate,
        tail=tail,
        scale=float(q.intermediate_scale),
        zero_point=int(q.intermediate_zp),
        source=f"MNIST {split}, {len(evaluated)} images" if evaluated.name == "MNIST" else evaluated.source,
    )


def evaluate(ctx: SweepContext, cfg: LinkConfig, baseline_accuracy: float | None = None) -> dict:
    """One grid point: the reference's accuracy and bytes with the device's link compression ``cfg``."""
    from mcuflow import reference

    link = reference.link_offload(ctx.intermediate, ctx.scale, ctx.zero_point, cfg)
    logits = reference.tail_forward(ctx.tail, link.dequantize())
    pred = np.where(ctx.exited, ctx.exit_label, np.argmax(logits, axis=1))
    off = ~ctx.exited
    acc = float(np.mean(pred == ctx.labels))
    n = ctx.n
    body = link.body_bytes[off].astype(np.float64)
    tensor = float(body.mean()) if off.any() else float("nan")
    wire = float(np.mean([offload_wire_bytes(int(b)) for b in link.body_bytes[off]])) if off.any() else float("nan")
    encs = np.bincount(link.encoding[off], minlength=4)
    kept = float((link.codes[off] != np.int8(link.zero_point)).sum(axis=1).mean()) if off.any() else float("nan")
    return {
        "label": cfg.label(),
        **cfg.as_dict(),
        "scale": link_scale(ctx.scale, cfg),
        "accuracy": acc,
        "accuracy_loss_points": None if baseline_accuracy is None else 100 * (baseline_accuracy - acc),
        "offload_accuracy": float(np.mean(pred[off] == ctx.labels[off])) if off.any() else float("nan"),
        "offload_rate": float(off.mean()),
        "tensor_bytes": tensor,
        "payload_bytes": tensor + OFFLOAD_FIXED_LEN,
        "wire_bytes": wire,
        "compression_vs_float32": FLOAT32_BYTES * n / tensor,
        "compression_vs_int8": n / tensor,
        "wire_compression_vs_float32": offload_wire_bytes(FLOAT32_BYTES * n) / wire,
        "wire_compression_vs_int8": offload_wire_bytes(n) / wire,
        "kept_values": kept,
        "enc_dense": int(encs[0]),
        "enc_bitmap": int(encs[1]),
        "enc_index_value": int(encs[2]),
        "enc_zero_runs": int(encs[3]),
        "pareto": False,
    }


def grid(
    ctx: SweepContext,
    thresholds=DEFAULT_THRESHOLDS,
    topks=DEFAULT_TOPKS,
    bits=DEFAULT_BITS,
    shifts: tuple[int | None, ...] = (None,),
) -> list[LinkConfig]:
    """The configurations of a sweep (shift None: fitted to the calibration range)."""
    out, seen = [], set()
    for t, k, b, s in itertools.product(thresholds, topks, bits, shifts):
        if k > ctx.n:
            continue
        if b == 8 and s not in (None, 0):
            continue
        cfg = resolve_link(ctx.q, ctx.calibration_intermediate, threshold=t, topk=k, bits=b, shift=s)
        if cfg not in seen:
            seen.add(cfg)
            out.append(cfg)
    return out


def pareto(rows: list[dict]) -> list[dict]:
    """Mark (and return, smallest first) the rows no other row beats on both tensor bytes and accuracy."""
    order = sorted(rows, key=lambda r: (r["tensor_bytes"], -r["accuracy"]))
    front, best = [], -1.0
    for r in order:
        if r["accuracy"] > best:
            r["pareto"] = True
            front.append(r)
            best = r["accuracy"]
    return front


def run_sweep(ctx: SweepContext, configs: list[LinkConfig], progress=None) -> tuple[list[dict], dict]:
    """Rows for every configuration plus the dense int8 baseline (the first row is the baseline)."""
    base = evaluate(ctx, LinkConfig())
    base["accuracy_loss_points"] = 0.0
    rows = [base]
    for cfg in configs:
        if cfg.is_identity:
            continue
        rows.append(evaluate(ctx, cfg, base["accuracy"]))
        if progress is not None:
            progress(1)
    pareto(rows)
    return rows, base


def best_within(rows: list[dict], max_loss_points: float) -> dict | None:
    """The most compressed configuration whose accuracy loss is at most ``max_loss_points``."""
    ok = [
        r for r in rows if r["accuracy_loss_points"] is not None and r["accuracy_loss_points"] <= max_loss_points + 1e-9
    ]
    return min(ok, key=lambda r: (r["tensor_bytes"], -r["accuracy"])) if ok else None


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return atomic.write_bytes(path, buf.getvalue().encode())


def write_plot(rows: list[dict], path: str | os.PathLike, title: str) -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for bits, marker in zip((8, 7, 6, 5, 4, 3, 2), "osD^v<>", strict=True):
        pts = [r for r in rows if r["bits"] == bits]
        if pts:
            ax.scatter(
                [r["tensor_bytes"] for r in pts],
                [100 * r["accuracy"] for r in pts],
                s=14,
                marker=marker,
                alpha=0.5,
                label=f"{bits}-bit values",
            )
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["tensor_bytes"])
    ax.plot(
        [r["tensor_bytes"] for r in front], [100 * r["accuracy"] for r in front], "k-", lw=1.2, label="Pareto front"
    )
    base = rows[0]
    ax.axhline(100 * base["accuracy"] - 1.0, color="grey", ls=":", lw=1, label="dense int8 - 1 point")
    n = round(base["compression_vs_int8"] * base["tensor_bytes"])  # elements of the intermediate
    ax.axvline(FLOAT32_BYTES * n / 4, color="tab:red", ls=":", lw=1, label="4x vs float32")
    ax.axvline(FLOAT32_BYTES * n / 16, color="tab:purple", ls=":", lw=1, label="16x vs float32")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40])
    ax.set_xlabel("bytes per offloaded sample (encoded tensor)")
    ax.set_ylabel("end-to-end accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return atomic.write_bytes(path, buf.getvalue())


def pareto_table(rows: list[dict]) -> list[str]:
    """Markdown lines of the Pareto front."""
    lines = [
        "| setting | accuracy | loss (points) | tensor B | payload B | wire B | x float32 | x int8 | x float32 (wire) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted((r for r in rows if r["pareto"]), key=lambda r: -r["tensor_bytes"]):
        lines.append(
            f"| {r['label']} | {100 * r['accuracy']:.2f}% | {r['accuracy_loss_points']:.2f} | {r['tensor_bytes']:.2f} | "
            f"{r['payload_bytes']:.2f} | {r['wire_bytes']:.2f} | {r['compression_vs_float32']:.1f} | "
            f"{r['compression_vs_int8']:.2f} | {r['wire_compression_vs_float32']:.2f} |"
        )
    return lines
