"""What ``mcuflow plan`` writes per board, each file atomically: ``candidates.csv`` (every candidate trained,
estimated costs, validation accuracy), ``front.csv`` (the measured candidates, ``on_front`` marking the
measured Pareto front), ``plan.json`` (all of it, the budget, the energy model and the chosen model),
``pareto.svg`` (accuracy against instructions, model flash and bytes per sample), ``chosen.pt`` and
``chosen.json``.

The plot is drawn with matplotlib (already a dependency of mcuflow, for the link sweep's figure), with the
Agg back end, as SVG: a vector file that diffs as text and opens in a browser.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mcuflow import atomic

CANDIDATE_COLUMNS = ["trial", "description", "accuracy", "exit_rate", "instructions", "model_flash", "model_ram",
                     "bytes_per_sample", "energy_uj", "feasible", "trained_now", "key"]  # fmt: skip
FRONT_COLUMNS = ["trial", "on_front", "description", "m_accuracy", "m_exit_rate", "m_instructions",
                 "m_instructions_max", "m_model_flash", "m_flash", "m_ram", "m_model_ram", "m_bytes_per_sample",
                 "m_energy_uj", "m_selftest_passed", "m_counted_on", "accuracy", "instructions", "model_flash",
                 "m_violations"]  # fmt: skip


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([("; ".join(v) if isinstance(v, list) else v) for v in (r.get(c, "") for c in columns)])
    return buf.getvalue()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands, measured = result["candidates"], result["measured"]
    axes_spec = [("instructions", "device instructions / inference"), ("model_flash", "model flash (B)"),
                 ("bytes_per_sample", "bytes / sample (device to host)")]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (key, label) in zip(axes, axes_spec, strict=True):
        feas = [r for r in cands if r["feasible"]]
        ax.scatter([r[key] for r in feas], [100 * r["accuracy"] for r in feas], s=10, c="0.75",
                   label="candidates (estimated cost, float val.)")  # fmt: skip
        m = [r for r in measured if not r.get("on_front") and "m_accuracy" in r]
        ax.scatter([r[f"m_{key}"] for r in m], [100 * r["m_accuracy"] for r in m], s=18, c="tab:orange",
                   label="measured, off the front")  # fmt: skip
        f = sorted((r for r in measured if r.get("on_front")), key=lambda r: r[f"m_{key}"])
        # the front is over all three costs at once: in one projection its members need not form a staircase
        ax.scatter([r[f"m_{key}"] for r in f], [100 * r["m_accuracy"] for r in f], s=28, c="tab:blue",
                   label="measured Pareto front (int8 val.; over all three costs)")  # fmt: skip
        ch = result.get("chosen")
        if ch:
            ax.scatter([ch["measured"][key]], [100 * ch["measured"]["accuracy"]], marker="*", s=160, c="tab:red",
                       zorder=5, label="chosen (retrained)")  # fmt: skip
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"mcuflow plan: {result['board']} ({result['mode']}, {result['budget_text']})", fontsize=9)
    fig.tight_layout()
    with atomic.atomic_output(path, suffix=".svg") as tmp:
        fig.savefig(tmp, format="svg")
    plt.close(fig)


def write_board_outputs(directory: Path, result: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic.write_text(directory / "candidates.csv", _csv(result["candidates"], CANDIDATE_COLUMNS))
    atomic.write_text(directory / "front.csv", _csv(result["measured"], FRONT_COLUMNS))
    if result["measured"]:
        plot(result, directory / "pareto.svg")
    if result.get("chosen"):
        atomic.write_text(directory / "chosen.json", json.dumps(result["chosen"], indent=2) + "\n")
    atomic.write_text(directory / "plan.json", json.dumps(result, indent=2) + "\n")


def write_compare(directory: Path, table: list[dict[str, Any]]) -> None:
    cols = ["mode", "best_val_accuracy", "candidates_to_reach_best", "candidates", "feasible",
            "draws_skipped_by_estimate", "trained_now"]  # fmt: skip
    atomic.write_text(directory / "compare.csv", _csv(table, cols))
    atomic.write_text(directory / "compare.json", json.dumps(table, indent=2) + "\n")


def front_lines(result: dict[str, Any]) -> list[str]:
    out = [
        f"{'trial':>5} {'val int8':>8} {'exit':>6} {'instr':>8} {'flash':>7} {'RAM':>6} {'B/smp':>6} {'uJ':>7}  model"
    ]
    for r in sorted((r for r in result["measured"] if r.get("on_front")), key=lambda r: r["m_instructions"]):
        out.append(
            f"{r['trial']:>5} {100 * r['m_accuracy']:>7.2f}% {100 * r['m_exit_rate']:>5.1f}% {r['m_instructions']:>8,.0f} "
            f"{r['m_model_flash']:>7,} {r['m_model_ram']:>6,} {r['m_bytes_per_sample']:>6.1f} {r['m_energy_uj']:>7.2f}  "
            f"{r['description']}"
        )
    return out
