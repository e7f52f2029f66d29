"""mcuflow kernel benchmark: instructions per inference and per MAC under QEMU, per format and core.

    python bench/run.py [--out bench/out] [--checkpoint examples/paper_sparse.pt] [--quick]

Every figure is read from the device's own counter (SysTick under ``qemu-system-arm -icount shift=0``:
instructions, not cycles). It writes CSV files, ``benchmarks.md`` (the tables) and PNG plots to ``--out``:

* the paper model, every storage format, on Cortex-M3 (an385), M4 (an386; also without the DSP kernels,
  and exported with --small-ram) and M7 (an500): instructions per head inference and per layer, per
  nonzero MAC;
* a density sweep of one 800 -> 50 layer (100 % down to 2 %) in every format, showing where sparse
  beats the dense SIMD kernel on each core;
* flash (weights, indices, code) and RAM per format; export time, build time and HIL samples per second.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mcuflow.profile import SelftestDevice

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("dense", "csr", "fixed", "index_free")
# (label, board, extra C flags, exported without a kernel scratch buffer)
VARIANTS = (
    ("M3", "qemu-mps2-an385", (), False),
    ("M4", "qemu-mps2-an386", (), False),
    ("M4 no DSP", "qemu-mps2-an386", ("-DMCUFLOW_HAS_DSP=0",), False),
    ("M4 small RAM", "qemu-mps2-an386", (), True),
    ("M7", "qemu-mps2-an500", (), False),
)
SWEEP_OUT = 50
SWEEP_OUT_DEGREES = (50, 40, 25, 15, 10, 5, 3, 2, 1)  # density = out-degree / 50: 100 % .. 2 %
QUICK_OUT_DEGREES = (50, 5, 1)


# ---------------------------------------------------------------- device sessions


def symbol_sizes(elf: Path) -> dict[str, int]:
    out = subprocess.run(
        ["arm-none-eabi-nm", "--print-size", "--size-sort", str(elf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def write_library(model, directory: Path, extra_layers=(), small_ram: bool = False) -> Path:
    """The generated library of ``model`` plus benchmark-only ``extra_layers`` (packed), kernels planned."""
    from mcuflow.codegen import render_library
    from mcuflow.passes import plan_kernels, plan_memory

    plan_kernels(model, small_ram=small_ram, extra_layers=tuple(extra_layers))
    plan_memory(model)
    for name, text in render_library(model, tuple(extra_layers)).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def entry_points(model, extra_layers=()) -> list[str]:
    """Each layer's entry point in the generated code (its code size is the layer's kernel code)."""
    from mcuflow.codegen.emit import build_context

    return [f"{cl.ident}_run" for cl in build_context(model, tuple(extra_layers)).layers]


def build_variant(directory: Path, board: str, cflags: tuple[str, ...]):
    from mcuflow.build import build

    t0 = time.perf_counter()
    res = build(directory, board, app="selftest", extra_cflags=cflags)
    return res, time.perf_counter() - t0


# ---------------------------------------------------------------- the paper model


def bench_paper(checkpoint: Path, work: Path, head_runs: int, layer_runs: int, log) -> dict:
    from mcuflow.export import export

    models, layers, sizes, timing = [], [], [], []
    for fmt in FORMATS:
        res = export(checkpoint, work / f"paper_{fmt}", force_format=fmt)
        small = export(checkpoint, work / f"paper_{fmt}_small_ram", force_format=fmt, small_ram=True)
        q = res.model
        timing.append({"what": f"export paper model ({fmt})", "seconds": round(res.seconds, 3)})
        names = entry_points(q)
        all_layers = q.all_layers()
        checksums = {}
        for label, board, cflags, small_ram in VARIANTS:
            build, secs = build_variant((small if small_ram else res).directory, board, cflags)
            timing.append({"what": f"build selftest ({fmt}, {label})", "seconds": round(secs, 3)})
            syms = symbol_sizes(build.elf)
            with SelftestDevice(build.elf, build.board) as dev:
                head = dev.head(head_runs)
                per_layer = [dev.layer(i, layer_runs) for i in range(len(all_layers))]
            macs = sum(layer.nnz for layer in all_layers)
            models.append(
                {
                    "core": label,
                    "format": fmt,
                    "instructions": round(head),
                    "macs": macs,
                    "per_mac": round(head / macs, 2),
                    "flash_bytes": build.flash_bytes,
                    "ram_bytes": build.ram_bytes,
                }
            )
            for i, (layer, (count, checksum)) in enumerate(zip(all_layers, per_layer, strict=True)):
                if checksums.setdefault(i, checksum) != checksum:
                    raise RuntimeError(f"layer {i} ({fmt}) gives different outputs on {label}")
                layers.append(
                    {
                        "core": label,
                        "format": layer.packed.format,
                        "layer": layer.name,
                        "shape": f"{layer.n_in}->{layer.n_out}",
                        "nnz": layer.nnz,
                        "instructions": round(count),
                        "per_nnz": round(count / layer.nnz, 2),
                    }
                )
            if label == "M4":
                for layer, name in zip(all_layers, names, strict=True):
                    pw = layer.packed
                    sizes.append(
                        {
                            "format": pw.format,
                            "layer": layer.name,
                            "shape": f"{layer.n_in}->{layer.n_out}",
                            "nnz": layer.nnz,
                            "weight_bytes": pw.weight_bytes,
                            "index_bytes": pw.index_bytes,
                            "per_row_bytes": 9 * layer.n_out,
                            "code_bytes": syms.get(name, 0),
                        }
                    )
                sizes.append(
                    {
                        "format": fmt,
                        "layer": "(model RAM)",
                        "shape": "",
                        "nnz": "",
                        "weight_bytes": "",
                        "index_bytes": "",
                        "per_row_bytes": "",
                        "code_bytes": "",
                        "ram_arena": q.plan.arena_bytes,
                        "ram_scratch": syms.get("mcuflow_scratch", 0),
                    }
                )
            log(f"paper {fmt:10s} {label:10s} head {head:9.0f} instructions ({head / macs:.2f} per MAC)")
    return {"models": models, "layers": layers, "sizes": sizes, "timing": timing}


# ---------------------------------------------------------------- the density sweep


def sweep_layers(out_degrees, seed: int = 0):
    """One quantised 800 -> 50 structured layer per density, packed in every format."""
    from mcuflow.checkpoint import model_hash
    from mcuflow.export import compile_graph
    from mcuflow.frontend import graph_from_model
    from mcuflow.nn.config import ExitConfig, ModelConfig, build_model
    from mcuflow.passes.formats import pack
    from mcuflow.sparsity.patterns import structured_columns, structured_params

    base, extra = None, []
    rng = np.random.default_rng(seed)
    for o in out_degrees:
        cfg = ModelConfig(sizes=[800, SWEEP_OUT, 10], out_degrees=[o, 10], seed=seed, split=1, exits=[ExitConfig(at=1)])
        model = build_model(cfg)
        q = compile_graph(graph_from_model(model, model_hash(model), name=f"sweep{o}"), rng.uniform(0, 1, (64, 800)))
        if base is None:
            base = q
        layer = q.head[0]
        if layer.pattern != "structured":  # 100 %: the front end calls it dense; give it the closed form too
            params = structured_params(layer.n_in, layer.n_out, o, seed)
            cols = structured_columns(params)
            layer = dataclasses.replace(
                layer,
                pattern="structured",
                params=params,
                columns=cols,
                weight=np.take_along_axis(layer.weight[:, np.argsort(layer.columns[0])], cols, axis=1),
            )
        for fmt in FORMATS:
            copy = dataclasses.replace(layer, name=f"sweep_{o}_{fmt}")
            copy.packed = pack(copy, fmt)
            extra.append(copy)
    return base, extra


def bench_sweep(work: Path, out_degrees, runs: int, log) -> list[dict]:
    base, extra = sweep_layers(out_degrees)
    directories = {small: write_library(base, work / f"sweep{small:d}", extra, small) for small in (False, True)}
    first = len(base.all_layers())
    rows = []
    for label, board, cflags, small_ram in VARIANTS:
        build, _ = build_variant(directories[small_ram], board, cflags)
        with SelftestDevice(build.elf, build.board) as dev:
            for i, layer in enumerate(extra):
                count, _ = dev.layer(first + i, runs)
                rows.append(
                    {
                        "core": label,
                        "format": layer.packed.format,
                        "density_pct": round(100 * layer.degree / layer.n_in, 1),
                        "nnz": layer.nnz,
                        "instructions": round(count),
                        "per_nnz": round(count / layer.nnz, 2),
                    }
                )
        log(f"sweep {label}: {len(extra)} layers")
    return rows


def crossover(rows: list[dict]) -> list[dict]:
    """Per core and sparse format: the highest density up to which it beats dense at every measured density."""
    out = []
    for core in dict.fromkeys(r["core"] for r in rows):
        dense = {r["density_pct"]: r["instructions"] for r in rows if r["core"] == core and r["format"] == "dense"}
        for fmt in FORMATS[1:]:
            pts = sorted(
                (r["density_pct"], r["instructions"]) for r in rows if r["core"] == core and r["format"] == fmt
            )
            best = None
            for density, count in pts:  # from the sparsest up
                if count >= dense[density]:
                    break
                best = density
            out.append({"core": core, "format": fmt, "beats_dense_up_to_pct": best})
    return out


# ---------------------------------------------------------------- HIL throughput


def bench_hil(checkpoint: Path, work: Path, samples: int) -> dict:
    from mcuflow.hil import run_hil

    r = run_hil(
        checkpoint, "qemu-mps2-an386", samples=samples, workdir=work / "hil", show_progress=False, log=lambda *a: None
    )
    return {
        "samples": r.samples,
        "samples_per_second": r.samples_per_second,
        "export_seconds": r.export_seconds,
        "build_seconds": r.build_seconds,
        "session_seconds": r.session_seconds,
    }


# ---------------------------------------------------------------- output


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def markdown(rows: list[dict], cols: list[str] | None = None) -> str:
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, float):
            return f"{v:,.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return "" if v is None else str(v)

    lines = [
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---:" if c not in ("core", "format", "layer", "what", "shape") else "---" for c in cols) + "|",
    ]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def pivot(rows: list[dict], index: str, column: str, value: str) -> list[dict]:
    out: dict = {}
    for r in rows:
        out.setdefault(r[index], {index: r[index]})[r[column]] = r[value]
    return list(out.values())


def plot_sweep(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = list(dict.fromkeys(r["core"] for r in rows))
    fig, axes = plt.subplots(1, len(cores), figsize=(4 * len(cores), 3.6), sharey=True)
    for ax, core in zip(np.atleast_1d(axes), cores, strict=True):
        for fmt in FORMATS:
            pts = sorted(
                (r["density_pct"], r["instructions"]) for r in rows if r["core"] == core and r["format"] == fmt
            )
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fmt)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(core)
        ax.set_xlabel("density (%)")
        ax.grid(True, which="both", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("instructions per layer call")
    np.atleast_1d(axes)[-1].legend()
    fig.suptitle(f"800 -> {SWEEP_OUT} layer, QEMU -icount instructions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res: dict, command: str) -> str:
    parts = [f"Produced by `{command}` ({res['seconds']:.0f} s on this machine).", ""]
    if res.get("paper"):
        p = res["paper"]
        parts += ["### Paper model: instructions per head inference (head + exit + decision)", ""]
        parts += [markdown(pivot(p["models"], "core", "format", "instructions")), ""]
        parts += ["### Paper model: per layer, instructions per nonzero MAC", ""]
        rows = [dict(r, key=f"{r['layer']} {r['shape']} ({r['format']})") for r in p["layers"]]
        parts += [markdown(pivot(rows, "key", "core", "per_nnz")), ""]
        parts += ["### Paper model: per layer, instructions per call", ""]
        parts += [markdown(pivot(rows, "key", "core", "instructions")), ""]
        parts += ["### Flash and RAM per format (M4 build)", ""]
        parts += [markdown(p["sizes"]), ""]
    if res.get("sweep"):
        parts += [f"### Density sweep: 800 -> {SWEEP_OUT}, instructions per layer call", ""]
        for core in dict.fromkeys(r["core"] for r in res["sweep"]):
            rows = [r for r in res["sweep"] if r["core"] == core]
            parts += [f"{core}:", "", markdown(pivot(rows, "density_pct", "format", "instructions")), ""]
        parts += ["### Crossover: sparse beats dense at every density up to (%)", ""]
        parts += [markdown(pivot(res["crossover"], "core", "format", "beats_dense_up_to_pct")), ""]
    timing = list(res.get("timing", []))
    if res.get("hil"):
        h = res["hil"]
        timing.append({"what": f"HIL session, {h['samples']} samples (M4)", "seconds": h["session_seconds"]})
        parts += [f"HIL: {h['samples_per_second']:.1f} samples per second over QEMU's serial port (M4).", ""]
    if timing:
        parts += ["### Times", "", markdown(timing), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "examples" / "paper_sparse.pt")
    ap.add_argument("--quick", action="store_true", help="a small sweep and no HIL (a smoke test)")
    ap.add_argument("--no-paper", action="store_true")
    ap.add_argument("--no-hil", action="store_true")
    ap.add_argument("--hil-samples", type=int, default=200)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"timing": []}
    with tempfile.TemporaryDirectory(prefix="mcuflow-bench-") as tmp:
        work = Path(tmp)
        if not args.no_paper:
            res["paper"] = bench_paper(
                args.checkpoint, work, 100 if args.quick else 500, 50 if args.quick else 200, print
            )
            res["timing"] += res["paper"].pop("timing")
        degrees = QUICK_OUT_DEGREES if args.quick else SWEEP_OUT_DEGREES
        res["sweep"] = bench_sweep(work, degrees, 5 if args.quick else 20, print)
        res["crossover"] = crossover(res["sweep"])
        if not args.quick and not args.no_hil:
            res["hil"] = bench_hil(args.checkpoint, work, args.hil_samples)
    res["seconds"] = time.perf_counter() - t0
    if res.get("paper"):
        for name in ("models", "layers", "sizes"):
            write_csv(args.out / f"paper_{name}.csv", res["paper"][name])
    write_csv(args.out / "sweep.csv", res["sweep"])
    write_csv(args.out / "crossover.csv", res["crossover"])
    if res["timing"]:
        write_csv(args.out / "timing.csv", res["timing"])
    plot_sweep(res["sweep"], args.out / "sweep.png")
    (args.out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    text = report(res, command)
    (args.out / "benchmarks.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
