"""A one-file HTML report of a HIL session: plots embedded as PNG, no external assets."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from pathlib import Path

from mcuflow import atomic
from mcuflow.errors import ConfigError

REQUIRED_KEYS = ("board", "samples", "accuracy", "parity_mismatches", "flash_bytes", "ram_bytes", "budget")


def load_result(path: str | os.PathLike) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(result, dict) or k not in result]
    if missing:
        raise ConfigError(f"{path} is not a `mcuflow hil --json` result (missing {', '.join(missing)})")
    return result


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


def memory_figure(r: dict) -> str:
    plt = _plt()
    comps = r.get("components") or {}
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 3.2))
    for ax, kind, used, budget in (
        (axes[0], "flash", r["flash_bytes"], r["budget"]["flash_bytes"]),
        (axes[1], "ram", r["ram_bytes"], r["budget"]["ram_bytes"]),
    ):
        left = 0
        parts = sorted(((n, c.get(kind, 0)) for n, c in comps.items()), key=lambda x: -x[1])
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


def tradeoff_figure(r: dict) -> str | None:
    rows = r.get("tradeoff") or []
    if not rows:
        return None
    plt = _plt()
    t = [x["threshold"] for x in rows]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(t, [100 * x["accuracy"] for x in rows], "o-", label="end-to-end accuracy (%)")
    ax.plot(t, [100 * x["offload_rate"] for x in rows], "s--", label="offloaded to the host (%)")
    ax.axvline(r["exit_threshold"], color="grey", lw=1, ls=":")
    ax.set_xlabel("exit threshold (max softmax, Q15 on the device)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax2 = ax.twinx()
    up = [x["bytes_up_per_sample"] for x in rows]
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


def layers_figure(r: dict) -> str | None:
    layers = _layers(r)
    if not layers:
        return None
    plt = _plt()
    names = [x["name"] for x in layers]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(layers)))
    key = "instructions" if all("instructions" in x for x in layers) else "macs"
    vals = [x.get(key, 0) for x in layers]
    ax.barh(names, vals, color="tab:blue")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(vals) * 1.25 if vals and max(vals) else 1)
    unit = "device instructions per inference" if key == "instructions" else "MACs per inference"
    total = r.get("device_instructions_mean")
    extra = (
        f"; whole head incl. exit decision: {total:,.0f} {r.get('instruction_unit', 'instructions')} (device counter)"
        if total
        else ""
    )
    ax.set_title(f"Per layer: {unit}{extra}", fontsize=9)
    fig.tight_layout()
    s = _png(fig)
    plt.close(fig)
    return s


def _layers(r: dict) -> list[dict]:
    exp = r.get("export") or {}
    layers = list((exp.get("layers") or {}).get("head", []))
    for ex in exp.get("exits") or []:
        layers += list(ex.get("layers", []))
    per_layer = r.get("layer_instructions") or {}
    for x in layers:
        if x.get("name") in per_layer:
            x["instructions"] = per_layer[x["name"]]
    return layers


def _img(b64: str | None, alt: str) -> str:
    if b64 is None:
        return f"<p class='note'>{html.escape(alt)}: no data in this session.</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x, fmt=",.0f") -> str:
    return "n/a" if x is None else format(x, fmt)


def render(r: dict, sweep: list[dict] | None = None) -> str:
    e = html.escape
    ok = r["parity_mismatches"] == 0 and r.get("lost", 0) == 0
    verdict = (
        f"PASS: all {r['samples']:,} device answers are bit-exact with the numpy int8 reference"
        if ok
        else f"FAIL: {r['parity_mismatches']} parity mismatches, {r.get('lost', 0)} lost samples"
    )
    rows = []
    for x in _layers(r):
        density = x["degree"] / x["n_in"] if x.get("n_in") else None
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{e(str(v))}</td>"
                for v in (
                    x["name"],
                    f"{x['n_in']}→{x['n_out']}",
                    x.get("pattern", ""),
                    _pct(density),
                    x.get("format", ""),
                    f"{x.get('nnz', 0):,}",
                    f"{x.get('weight_bytes', 0):,}",
                    f"{x.get('index_bytes', 0):,}",
                    "yes" if x.get("relu") else "no",
                    f"{x['instructions']:,.0f}" if "instructions" in x else "not measured",
                )
            )
            + "</tr>"
        )
    metrics = [
        ("end-to-end accuracy (device + host tail)", _pct(r["accuracy"])),
        ("float model at the same threshold", _pct(r.get("float_accuracy"))),
        ("numpy int8 reference", _pct(r.get("reference_accuracy"))),
        ("answered on the device (early exit)", _pct(r.get("exit_rate"))),
        ("exit threshold", f"{r.get('exit_threshold', 0):g}"),
        ("device work per inference", f"{_num(r.get('device_instructions_mean'))} {r.get('instruction_unit', '')}"),
        ("bytes host → device per sample", _num(r.get("bytes_down_per_sample"), ",.1f")),
        ("bytes device → host per sample", _num(r.get("bytes_up_per_sample"), ",.1f")),
        ("bytes per offloaded sample", _num(r.get("bytes_per_offload"), ",.1f")),
        ("samples per second (QEMU)", _num(r.get("samples_per_second"), ",.0f")),
        (
            "link time per sample at 115200 baud",
            f"{_num(1000 * (r.get('link_seconds_per_sample_at_115200') or 0), ',.1f')} ms",
        ),
        ("lost samples", str(r.get("lost", 0))),
    ]
    mrows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in metrics)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mcuflow HIL report: {e(r["board"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.1rem; margin-top: 1.8rem; border-bottom: 1px solid #ddd; }}
.verdict {{ padding: .7rem 1rem; border-radius: .4rem; font-weight: 600; }}
.pass {{ background: #e6f4ea; color: #1e6b34; }} .fail {{ background: #fce8e6; color: #a50e0e; }}
table {{ border-collapse: collapse; font-size: .85rem; }} td, th {{ padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: left; }}
img {{ max-width: 100%; }} .note {{ color: #777; font-size: .85rem; }}
</style></head><body>
<h1>mcuflow host-in-the-loop report</h1>
<p>{e(r["board"])} ({e(str(r.get("cpu", "")))}, QEMU {e(str(r.get("qemu_machine", "")))}), {r["samples"]:,} samples from the {e(str(r.get("data", "")))};
model <code>{e(str(r.get("model_hash", ""))[:16])}</code> from <code>{e(str(r.get("checkpoint", "")))}</code>.</p>
<div class="verdict {"pass" if ok else "fail"}">{e(verdict)}</div>
<h2>Results</h2><table>{mrows}</table>
<h2>The model on the device</h2>
<table><tr><th>layer</th><th>shape</th><th>pattern</th><th>density</th><th>format</th><th>nnz</th><th>weight B</th><th>index B</th><th>ReLU</th><th>device instructions</th></tr>{"".join(rows)}</table>
<p class="note">Peak activation RAM (arena): {_num((r.get("export") or {}).get("peak_ram_bytes"))} B.</p>
<h2>Flash and RAM against the board</h2>{_img(memory_figure(r), "memory")}
<h2>Exit threshold: accuracy vs offloading vs bytes</h2>{_img(tradeoff_figure(r), "threshold trade-off")}
<h2>Per-layer work</h2>{_img(layers_figure(r), "per-layer work")}
<h2>Accuracy vs parameters: sparse, deep, shallow</h2>{_img(params_figure(sweep or []), "accuracy vs parameters (run `mcuflow sweep` and pass --sweep)")}
<p class="note">Generated by mcuflow from a <code>mcuflow hil --json</code> result.</p>
</body></html>
"""


def write_report(result: dict, path: str | os.PathLike, sweep_csv: str | os.PathLike | None = None) -> Path:
    return atomic.write_text(path, render(result, load_sweep(sweep_csv)))
