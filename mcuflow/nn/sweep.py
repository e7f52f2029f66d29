"""Reproduce Table I of the paper: sparse vs deep vs shallow MLPs at matched parameter counts.

Parameters are counted as edges + biases of the main path. Our counts for the
paper's first deep/shallow row are swapped with respect to the paper's table:
deep [800, 3, 3, 10] has 2,455 parameters and shallow [800, 3, 10] 2,443
(the paper prints 2,443 for deep and 2,455 for shallow).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcuflow.nn.config import ExitConfig, ModelConfig, build_model, main_path_parameters


@dataclass(frozen=True)
class TableRow:
    family: str
    sizes: tuple[int, ...]
    out_degrees: tuple[int, ...] | None
    paper_accuracy: float  # percent
    paper_params: int

    def config(self, pattern: str = "structured", seed: int = 0, exit_at_head: bool = False) -> ModelConfig:
        return ModelConfig.from_dict(
            dict(
                sizes=list(self.sizes),
                out_degrees=list(self.out_degrees) if self.out_degrees else None,
                family=self.family,
                pattern=pattern,
                seed=seed,
                split=1,
                exits=[ExitConfig(at=1).__dict__] if exit_at_head else [],
                input_size=784,
            )
        )


def _rows() -> list[TableRow]:
    spec = [
        # (deep width, shallow width, sparse degrees, paper acc deep/shallow/sparse, paper params deep/shallow/sparse)
        (3, 3, (2, 9, 10), (76.58, 80.89, 93.93), (2443, 2455, 2450)),
        (5, 5, (4, 10, 10), (90.69, 89.84, 95.30), (4095, 4065, 4090)),
        (7, 7, (6, 11, 10), (92.85, 92.22, 95.89), (5743, 5687, 5730)),
        (14, 14, (13, 17, 10), (95.35, 95.44, 96.54), (11574, 11364, 11570)),
        (20, 21, (19, 24, 10), (96.03, 96.03, 96.98), (16650, 17041, 16650)),
    ]
    rows = []
    for deep, shallow, degrees, acc, params in spec:
        rows.append(TableRow("deep", (800, deep, deep, 10), None, acc[0], params[0]))
        rows.append(TableRow("shallow", (800, shallow, 10), None, acc[1], params[1]))
        rows.append(TableRow("sparse", (800, 40, 40, 10), degrees, acc[2], params[2]))
    return rows


TABLE_I = _rows()


def count_params(row: TableRow) -> int:
    return main_path_parameters(build_model(row.config()))


def run_sweep(
    train_xy,
    test_xy,
    train_cfg,
    families: tuple[str, ...] = ("sparse", "deep", "shallow"),
    levels: tuple[int, ...] | None = None,
    pattern: str = "structured",
    seeds: tuple[int, ...] = (0,),
    show_progress: bool = True,
    on_result=None,
) -> list[dict[str, Any]]:
    """Train every selected row for every seed; ``levels`` are row-group indices 0..4."""
    from dataclasses import replace

    from mcuflow.nn.train import build_and_train

    results = []
    for i, row in enumerate(TABLE_I):
        if row.family not in families or (levels is not None and i // 3 not in levels):
            continue
        for seed in seeds:
            cfg = row.config(pattern=pattern, seed=0)
            res = build_and_train(
                cfg,
                train_xy,
                test_xy,
                replace(train_cfg, seed=seed),
                show_progress=show_progress,
                eval_every_epoch=False,
            )
            entry = {
                "level": i // 3 + 1,
                "family": row.family,
                "sizes": " ".join(map(str, row.sizes)),
                "out_degrees": " ".join(map(str, row.out_degrees)) if row.out_degrees else "",
                "seed": seed,
                "params": res.metrics["params"]["main_path"],
                "paper_params": row.paper_params,
                "accuracy": round(res.metrics["accuracy"]["final"] * 100, 2),
                "paper_accuracy": row.paper_accuracy,
                "delta": round(res.metrics["accuracy"]["final"] * 100 - row.paper_accuracy, 2),
                "train_time_s": res.metrics["train_time_s"],
            }
            results.append(entry)
            if on_result:
                on_result(entry)
    return results


COLUMNS = [
    "level",
    "family",
    "sizes",
    "out_degrees",
    "seed",
    "params",
    "paper_params",
    "accuracy",
    "paper_accuracy",
    "delta",
    "train_time_s",
]


def format_table(results: list[dict[str, Any]]) -> str:
    head = f"{'family':<8} {'sizes':<14} {'out-deg':<9} {'seed':>4} {'params':>7} {'paper':>7} {'acc %':>7} {'paper %':>8} {'delta':>6}"
    lines = [head]
    for r in results:
        lines.append(
            f"{r['family']:<8} {r['sizes']:<14} {r['out_degrees']:<9} {r['seed']:>4} {r['params']:>7} "
            f"{r['paper_params']:>7} {r['accuracy']:>7.2f} {r['paper_accuracy']:>8.2f} {r['delta']:>+6.2f}"
        )
    return "\n".join(lines)


def _atomic_write(path: Path, write) -> Path:
    from mcuflow.atomic import atomic_output

    with atomic_output(path, suffix=path.suffix) as tmp:
        write(tmp)
    return path


def write_csv(results: list[dict[str, Any]], path: str | Path) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(results)
    return _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(buf.getvalue()))


def plot(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Accuracy against parameters per family, ours (solid) and the paper's (dashed), like its Figure 4."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = {"sparse": "tab:green", "deep": "tab:blue", "shallow": "tab:orange"}
    for fam in ("sparse", "deep", "shallow"):
        rows = [r for r in results if r["family"] == fam]
        if not rows:
            continue
        by_params: dict[int, list[float]] = {}
        for r in rows:
            by_params.setdefault(r["params"], []).append(r["accuracy"])
        xs = sorted(by_params)
        ax.plot(
            xs,
            [sum(by_params[x]) / len(by_params[x]) for x in xs],
            marker="o",
            color=colors[fam],
            label=f"{fam} (mcuflow)",
        )
        paper = sorted({(r["paper_params"], r["paper_accuracy"]) for r in rows})
        ax.plot(
            [p[0] for p in paper],
            [p[1] for p in paper],
            ls="--",
            marker="x",
            color=colors[fam],
            alpha=0.6,
            label=f"{fam} (paper)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("parameters (edges + biases)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_title("accuracy vs parameters (Table I)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120))
    finally:
        plt.close(fig)
