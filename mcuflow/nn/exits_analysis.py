"""Early-exit analysis: how many samples a confidence threshold lets leave early, and at what accuracy.

A sample leaves at the first exit (in the device's order: attach position, then index) whose
confidence passes the threshold (max softmax probability ``>= t``, or entropy in nats ``<= t``,
tested as ``-entropy >= -t``); the others are answered by the final output. That is the device's
rule, :func:`mcuflow.exitrule.decide`, applied here to float logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mcuflow import exitrule

CRITERIA = ("max_prob", "entropy")
DEFAULT_THRESHOLDS = {
    "max_prob": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999],
    "entropy": [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0],
}
DEFAULT_FRACTIONS = (0.5, 0.7, 0.9)


def confidence(logits: torch.Tensor, criterion: str) -> torch.Tensor:
    """Per-sample score where higher means more confident (entropy is negated)."""
    logp = torch.log_softmax(logits.double(), dim=1)
    if criterion == "max_prob":
        return logp.max(1).values.exp()
    if criterion == "entropy":
        return (logp.exp() * logp).sum(1)  # = -entropy
    raise ValueError(f"unknown exit criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")


def _score_threshold(threshold: float, criterion: str) -> float:
    return threshold if criterion == "max_prob" else -threshold


def _cascade(
    exit_logits: list[torch.Tensor],
    final_logits: torch.Tensor,
    threshold: float,
    criterion: str,
    exit_points: Sequence[int] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prediction and exit index (-1 = final) of every sample under the device's exit rule."""
    scores = [confidence(lg, criterion).numpy() for lg in exit_logits]
    decision = exitrule.decide(
        scores, _score_threshold(threshold, criterion), attach=exit_points, samples=len(final_logits)
    )
    pred = decision.answer([lg.argmax(1).numpy() for lg in exit_logits], final_logits.argmax(1).numpy())
    # back to torch: the accuracies below keep their float32 means, figure for figure
    return torch.from_numpy(pred), torch.from_numpy(decision.exit_index)


def evaluate_threshold(
    exit_logits: list[torch.Tensor],
    final_logits: torch.Tensor,
    labels: torch.Tensor,
    threshold: float,
    criterion: str,
    exit_points: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Fraction exiting early, accuracy of the exited ones, end-to-end accuracy.

    ``exit_points``: each exit's attach position (``SplitNet.exit_points``), which sets the order
    the device tries them in; None: the order of ``exit_logits``."""
    pred, where = _cascade(exit_logits, final_logits, threshold, criterion, exit_points)
    n = len(labels)
    early = where >= 0
    n_early = int(early.sum())
    correct = pred == labels
    return {
        "criterion": criterion,
        "threshold": threshold,
        "exit_fraction": n_early / n if n else 0.0,
        "per_exit_fraction": [int((where == e).sum()) / n if n else 0.0 for e in range(len(exit_logits))],
        "exited_accuracy": float(correct[early].float().mean()) if n_early else math.nan,
        "end_to_end_accuracy": float(correct.float().mean()) if n else math.nan,
    }


def threshold_sweep(
    exit_logits: list[torch.Tensor],
    final_logits: torch.Tensor,
    labels: torch.Tensor,
    criterion: str = "max_prob",
    thresholds: list[float] | None = None,
    exit_points: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    thresholds = DEFAULT_THRESHOLDS[criterion] if thresholds is None else thresholds
    return [evaluate_threshold(exit_logits, final_logits, labels, t, criterion, exit_points) for t in thresholds]


def at_exit_fraction(
    exit_logits: torch.Tensor, final_logits: torch.Tensor, labels: torch.Tensor, fraction: float, criterion: str
) -> dict[str, Any]:
    """Let exactly the ``fraction`` most confident samples (at one exit) leave early.

    Not the device's rule (:mod:`mcuflow.exitrule`): a fixed fraction leaves, ties at the cut
    included or not by position, to find the threshold that gives it. The threshold reported is the confidence of the least confident exited sample,
    i.e. the device threshold that gives (about) this fraction on this data.
    """
    n = len(labels)
    k = round(fraction * n)
    score = confidence(exit_logits, criterion)
    order = torch.argsort(score, descending=True, stable=True)
    early = torch.zeros(n, dtype=torch.bool)
    early[order[:k]] = True
    pred = torch.where(early, exit_logits.argmax(1), final_logits.argmax(1))
    correct = pred == labels
    thr = float(score[order[k - 1]]) if k else math.inf
    return {
        "criterion": criterion,
        "target_fraction": fraction,
        "exit_fraction": k / n if n else 0.0,
        "threshold": thr if criterion == "max_prob" else -thr,
        "exited_accuracy": float(correct[early].float().mean()) if k else math.nan,
        "end_to_end_accuracy": float(correct.float().mean()) if n else math.nan,
    }


@dataclass
class ExitAnalysis:
    samples: int
    exit_accuracy: list[float]
    final_accuracy: float
    sweeps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fractions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "exit_accuracy": self.exit_accuracy,
            "final_accuracy": self.final_accuracy,
            "sweeps": self.sweeps,
            "fractions": self.fractions,
        }


def analyse_logits(
    exit_logits: list[torch.Tensor],
    final_logits: torch.Tensor,
    labels: torch.Tensor,
    thresholds: dict[str, list[float]] | None = None,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    exit_points: Sequence[int] | None = None,
) -> ExitAnalysis:
    """Sweeps over both criteria plus the fixed-fraction points (for the first exit).

    ``exit_points``: the exits' attach positions (the device's order), as in :func:`evaluate_threshold`."""
    labels = labels.long()
    out = ExitAnalysis(
        samples=len(labels),
        exit_accuracy=[float((lg.argmax(1) == labels).float().mean()) for lg in exit_logits],
        final_accuracy=float((final_logits.argmax(1) == labels).float().mean()),
    )
    for c in CRITERIA:
        out.sweeps[c] = threshold_sweep(
            exit_logits, final_logits, labels, c, (thresholds or {}).get(c), exit_points=exit_points
        )
        if exit_logits:
            out.fractions[c] = [at_exit_fraction(exit_logits[0], final_logits, labels, f, c) for f in fractions]
    return out


def analyse_model(model, x: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> ExitAnalysis:
    from mcuflow.nn.train import predict

    exit_logits, final_logits = predict(model, x)
    kwargs.setdefault("exit_points", model.exit_points)
    return analyse_logits(exit_logits, final_logits, y, **kwargs)


def format_table(analysis: ExitAnalysis) -> str:
    lines = [
        f"{analysis.samples} samples; accuracy: final {analysis.final_accuracy * 100:.2f}%, "
        + ", ".join(f"exit {i + 1} alone {a * 100:.2f}%" for i, a in enumerate(analysis.exit_accuracy))
    ]
    for c, rows in analysis.sweeps.items():
        rule = "max softmax prob >= t" if c == "max_prob" else "entropy (nats) <= t"
        lines += ["", f"exit when {rule}", f"{'t':>8} {'exit %':>8} {'exited acc %':>13} {'end-to-end acc %':>17}"]
        for r in rows:
            ex = "-" if math.isnan(r["exited_accuracy"]) else f"{r['exited_accuracy'] * 100:.2f}"
            lines.append(
                f"{r['threshold']:>8.4g} {r['exit_fraction'] * 100:>8.1f} {ex:>13} {r['end_to_end_accuracy'] * 100:>17.2f}"
            )
    if analysis.fractions:
        lines += ["", "exit 1 at a fixed early-exit fraction (most confident first)"]
        lines.append(f"{'criterion':>9} {'exit %':>7} {'threshold':>10} {'exited acc %':>13} {'end-to-end acc %':>17}")
        for c, rows in analysis.fractions.items():
            for r in rows:
                lines.append(
                    f"{c:>9} {r['exit_fraction'] * 100:>7.1f} {r['threshold']:>10.4g} "
                    f"{r['exited_accuracy'] * 100:>13.2f} {r['end_to_end_accuracy'] * 100:>17.2f}"
                )
    return "\n".join(lines)


def plot(analysis: ExitAnalysis, path: str | Path, title: str = "early exit") -> Path:
    """End-to-end accuracy against the fraction exiting early, one curve per criterion (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, rows in analysis.sweeps.items():
        pts = sorted((r["exit_fraction"] * 100, r["end_to_end_accuracy"] * 100) for r in rows)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"threshold on {c.replace('_', ' ')}")
    for r in analysis.fractions.get("max_prob", []):
        ax.scatter([r["exit_fraction"] * 100], [r["end_to_end_accuracy"] * 100], color="black", zorder=3)
        ax.annotate(
            f"{r['end_to_end_accuracy'] * 100:.2f}%",
            (r["exit_fraction"] * 100, r["end_to_end_accuracy"] * 100),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=8,
        )
    ax.axhline(analysis.final_accuracy * 100, color="grey", ls="--", lw=1, label="final output only")
    for i, a in enumerate(analysis.exit_accuracy):
        ax.axhline(a * 100, color="grey", ls=":", lw=1, label=f"exit {i + 1} only")
    ax.set_xlabel("samples exiting early (%)")
    ax.set_ylabel("end-to-end accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from mcuflow.atomic import atomic_output

    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path
