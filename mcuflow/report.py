"""A one-file HTML report of a HIL session: plots embedded as PNG, no external assets.

:func:`page` works out every value the report shows from a :class:`~mcuflow.hil_result.HilResult`;
``templates/report.html.j2`` only lays them out (autoescaped HTML).
"""

from __future__ import annotations

import base64
import csv
import io
import os
from dataclasses import dataclass, fields
from pathlib import Path

from mcuflow import atomic
from mcuflow.hil_result import HilResult
from mcuflow.manifest import LayerEntry

TEMPLATE = "report.html.j2"


def default_sweep() -> Path | None:
    """The model sweep shipped with mcuflow (docs/results-model/table1.csv), if present."""
    from mcuflow.errors import ConfigError
    from mcuflow.paths import model_results_dir

    try:
        return model_results_dir() / "table1.csv"
    except ConfigError:
        return None


def load_sweep(path: str | os.PathLike | None) -> list[dict]:
    """Rows of a ``mcuflow sweep`` CSV (family, params, accuracy), or [] when there is none."""
    if path is None or not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        try:
            acc = float(r.get("accuracy") or r.get("final_accuracy") or r.get("test_accuracy"))
            out.append({"family": r["family"], "params": int(float(r["params"])), "accuracy": acc})
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def memory_figure(r: HilResult) -> str:
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 3.2))
    for ax, kind, used, budget in (
        (axes[0], "flash", r.flash_bytes, r.budget.flash_bytes),
        (axes[1], "ram", r.ram_bytes, r.budget.ram_bytes),
    ):
        left = 0
        parts = sorted(((n, getattr(c, kind)) for n, c in r.components.items()), key=lambda x: -x[1])
        parts = [(n, v) for n, v in parts if v > 0] or [("total", used)]
        cmap = plt.get_cmap("tab10")
        for i, (name, v) in enumerate(parts):
            ax.barh([0], [v], left=left, color=cmap(i % 10), label=f"{name} {v:,} B")
            left += v
        limit = max(used * 1.25, 1)
        if budget <= 4 * used:
            ax.axvline(budget, color="red", lw=2)
            limit = max(limit, budget * 1.05)
        ax.set_xlim(0, limit)
        ax.set_yticks([])
        ax.set_title(
            f"{kind.upper()}: {used:,} B used of {budget:,} B ({100 * used / budget:.2f}% of the board)", fontsize=9
        )
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    fig.tight_layout()
    s = _png(fig)
    plt.close(fig)
    return s


def tradeoff_figure(r: HilResult) -> str | None:
    rows = r.tradeoff
    if not rows:
        return None
    plt = _plt()
    t = [x.threshold for x in rows]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(t, [100 * x.accuracy for x in rows], "o-", label="end-to-end accuracy (%)")
    ax.plot(t, [100 * x.offload_rate for x in rows], "s--", label="offloaded to the host (%)")
    ax.axvline(r.exit_threshold, color="grey", lw=1, ls=":")
    ax.set_xlabel("exit threshold (max softmax, Q15 on the device)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax2 = ax.twinx()
    up = [x.bytes_up_per_sample for x in rows]
    if all(u is not None for u in up):
        ax2.plot(t, up, "^-", color="tab:green", label="bytes up per sample")
        ax2.set_ylabel("bytes device -> host per sample")
        ax2.set_ylim(0, max(up) * 1.2)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, fontsize=8, loc="lower left")
    ax.set_title("Exit-threshold trade-off (int8 reference on the session's samples)", fontsize=9)
    fig.tight_layout()
    s = _png(fig)
    plt.close(fig)
    return s


def params_figure(sweep: list[dict]) -> str | None:
    if not sweep:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for fam, marker in (("sparse", "o-"), ("deep", "s--"), ("shallow", "^:")):
        pts = sorted(
            (x["params"], 100 * x["accuracy"] if x["accuracy"] <= 1 else x["accuracy"])
            for x in sweep
            if x["family"] == fam
        )
        if pts:
            ax.plot([p for p, _ in pts], [a for _, a in pts], marker, label=fam)
    ax.set_xlabel("parameters (edges + biases)")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy vs parameters: predefined-sparse vs dense networks", fontsize=9)
    fig.tight_layout()
    s = _png(fig)
    plt.close(fig)
    return s


def layers_figure(r: HilResult) -> str | None:
    layers = _layers(r)
    if not layers:
        return None
    plt = _plt()
    names = [layer.name for layer, _ in layers]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(layers)))
    measured = all(count is not None for _, count in layers)
    vals = [count if measured else layer.macs for layer, count in layers]
    ax.barh(names, vals, color="tab:blue")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(vals) * 1.25 if vals and max(vals) else 1)
    unit = "device instructions per inference" if measured else "MACs per inference"
    total = r.device_instructions_mean
    extra = f"; whole head incl. exit decision: {total:,.0f} {r.instruction_unit} (device counter)" if total else ""
    ax.set_title(f"Per layer: {unit}{extra}", fontsize=9)
    fig.tight_layout()
    s = _png(fig)
    plt.close(fig)
    return s


def _layers(r: HilResult) -> list[tuple[LayerEntry, float | None]]:
    """Every layer on the device, with its measured instructions per call (None: not measured)."""
    per_layer = r.layer_instructions or {}
    return [(layer, per_layer.get(layer.name)) for layer in r.export.all_layers()]


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x, fmt=",.0f") -> str:
    return "n/a" if x is None else format(x, fmt)


@dataclass(frozen=True)
class ReportPage:
    """Everything the template prints, as text (or base64 PNG), in the order it prints it."""

    board: str
    cpu: str
    qemu_machine: str
    samples: str
    data: str
    model_hash: str  # its first 16 hex digits
    checkpoint: str
    verdict: str
    verdict_class: str  # "pass" or "fail": the CSS class
    metrics: list[tuple[str, str]]  # (what, value)
    layer_rows: list[tuple[str, ...]]  # one cell per column of the layer table
    peak_ram: str
    figures: list[tuple[str, str | None, str]]  # (heading, base64 PNG or None when there is no data, alt text)


def page(r: HilResult, sweep: list[dict] | None = None) -> ReportPage:
    ok = r.passed
    q = r.quantization
    verdict = (
        f"PASS: all {r.samples:,} device answers are bit-exact with the numpy int8 reference; "
        f"int8 loses {q.loss_points:.2f} accuracy points against float"
        if ok
        else "FAIL: " + "; ".join(r.problems())
    )
    rows = []
    for x, instructions in _layers(r):
        density = x.degree / x.n_in if x.n_in else None
        rows.append(
            (
                x.name,
                f"{x.n_in}→{x.n_out}",
                x.pattern,
                _pct(density),
                x.format,
                f"{x.nnz:,}",
                f"{x.weight_bytes:,}",
                f"{x.index_bytes:,}",
                "yes" if x.relu else "no",
                "not measured" if instructions is None else f"{instructions:,.0f}",
            )
        )
    metrics = [
        ("end-to-end accuracy (device + host tail)", _pct(r.accuracy)),
        ("float model at the same threshold", _pct(r.float_accuracy)),
        ("numpy int8 reference", _pct(r.reference_accuracy)),
        ("quantisation loss (float - int8)", f"{q.loss_points:.2f} points (bound {q.bound_points:g})"),
        ("answered on the device (early exit)", _pct(r.exit_rate)),
        ("exit threshold", f"{r.exit_threshold:g}"),
        ("device work per inference", f"{_num(r.device_instructions_mean)} {r.instruction_unit}"),
        ("bytes host → device per sample", _num(r.bytes_down_per_sample, ",.1f")),
        ("bytes device → host per sample", _num(r.bytes_up_per_sample, ",.1f")),
        ("bytes per offloaded sample", _num(r.bytes_per_offload, ",.1f")),
        ("samples per second (QEMU)", _num(r.samples_per_second, ",.0f")),
        (
            "link time per sample at 115200 baud",
            f"{_num(1000 * (r.link_seconds_per_sample_at_115200 or 0), ',.1f')} ms",
        ),
        ("lost samples", str(r.lost)),
    ]
    figures = [
        ("Flash and RAM against the board", memory_figure(r), "memory"),
        ("Exit threshold: accuracy vs offloading vs bytes", tradeoff_figure(r), "threshold trade-off"),
        ("Per-layer work", layers_figure(r), "per-layer work"),
        (
            "Accuracy vs parameters: sparse, deep, shallow",
            params_figure(sweep or []),
            "accuracy vs parameters (run `mcuflow sweep` and pass --sweep)",
        ),
    ]
    return ReportPage(
        board=r.board,
        cpu=r.cpu,
        qemu_machine=r.qemu_machine,
        samples=f"{r.samples:,}",
        data=r.data,
        model_hash=r.model_hash[:16],
        checkpoint=r.checkpoint,
        verdict=verdict,
        verdict_class="pass" if ok else "fail",
        metrics=metrics,
        layer_rows=rows,
        peak_ram=_num(r.export.peak_ram_bytes),
        figures=figures,
    )


def _environment():
    import jinja2

    from mcuflow.paths import templates_dir

    # Its own environment, not codegen's: this one writes HTML, so everything printed is escaped.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
    )


def render(r: HilResult, sweep: list[dict] | None = None) -> str:
    view = page(r, sweep)
    return _environment().get_template(TEMPLATE).render({f.name: getattr(view, f.name) for f in fields(view)})


def write_report(result: HilResult, path: str | os.PathLike, sweep_csv: str | os.PathLike | None = None) -> Path:
    return atomic.write_text(path, render(result, load_sweep(sweep_csv)))
