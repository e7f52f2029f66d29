"""Convolutional heads on the device: dense against sparse-channel B-LeNet heads (issue 14).

    PYTHONPATH=. python bench/conv.py --json out/conv.json [--checkpoint A.pt --checkpoint B.pt --data-dir MNIST]

For each head (dense convolutions, and the same shapes with predefined-sparse channel connectivity) it
prints per conv layer: MACs (nonzero, what the kernel multiplies), weight bytes in flash, the export's
peak RAM (arena + scratch + flags), and device instructions per call under QEMU -icount on Cortex-M3
(qemu-mps2-an385, reference kernels), M4 (an386, SMLAD kernels) and M7 (an500), with instructions per MAC.
Without checkpoints the heads are B-LeNet's shapes with random weights (instruction counts do not depend
on the values); with them, the trained models' lowered heads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from mcuflow import atomic
from mcuflow.export import export
from mcuflow.ir.graph import Conv2d, ExitBranch, Graph, Linear, Pool2d, Shape
from mcuflow.profile import profile_layers
from mcuflow.sparsity.patterns import structured_columns, structured_params

BOARDS = {"M3": "qemu-mps2-an385", "M4": "qemu-mps2-an386", "M7": "qemu-mps2-an500"}


def _conv(name, ins, c_out, k, pad, rng, d_out=None):
    oh, ow = ins.h + 2 * pad - k + 1, ins.w + 2 * pad - k + 1
    if d_out is None:
        ch, pattern, params = np.tile(np.arange(ins.c), (c_out, 1)), "dense", None
    else:
        params = structured_params(ins.c, c_out, d_out, 0)
        ch, pattern = structured_columns(params), "structured"
    w = rng.normal(0, (2.0 / (k * k * ch.shape[1])) ** 0.5, (c_out, k, k, ch.shape[1]))
    return Conv2d(name, ins, Shape(oh, ow, c_out), (k, k), (1, 1), (pad,) * 4, w, ch.astype(np.int64),
                  rng.normal(0, 0.05, c_out), pattern=pattern, params=params, relu=True)  # fmt: skip


def _pool(name, ins):
    return Pool2d(name, ins, Shape(ins.h // 2, ins.w // 2, ins.c), "max", (2, 2), (2, 2))


def _fc(name, n_in, n_out, rng):
    cols = np.tile(np.arange(n_in), (n_out, 1)).astype(np.int64)
    return Linear(
        name, n_in, n_out, rng.normal(0, (2.0 / n_in) ** 0.5, (n_out, n_in)), cols, rng.normal(0, 0.05, n_out)
    )


def blenet_head(sparse: bool, seed: int = 0) -> Graph:
    """B-LeNet's device part: conv 1->5 (5x5, pad 3), pool, conv 5->10 (5x5), pool (offloaded: 5x5x10),
    and the branch after the first block: conv 5->10 (3x3), pool, FC -> 10. Sparse: the 5->10 junctions read
    2 of 5 input channels (out-degree 4)."""
    rng = np.random.default_rng(seed)
    d = 4 if sparse else None
    s0 = Shape(28, 28, 1)
    c1 = _conv("conv1", s0, 5, 5, 3, rng)
    p1 = _pool("pool1", c1.out_shape)
    c2 = _conv("conv2", p1.out_shape, 10, 5, 0, rng, d)
    p2 = _pool("pool2", c2.out_shape)
    b1 = _conv("branch.conv", p1.out_shape, 10, 3, 1, rng, d)
    bp = _pool("branch.pool", b1.out_shape)
    head = [c1, p1, c2, p2]
    branch = ExitBranch("branch", 2, [b1, bp, _fc("branch.fc", bp.out_shape.size, 10, rng)])
    h = hashlib.sha256(f"blenet-bench{sparse}{seed}".encode()).hexdigest()
    return Graph("blenet-" + ("sparse" if sparse else "dense"), s0.size, head, [branch], 10, h, input_shape=s0)


def measure(
    graph: Graph | str, calibration: np.ndarray | None, work: Path, boards: dict[str, str], data_dir: str | None = None
) -> dict:
    """One head: a float graph (random weights) or a checkpoint path (exported with MNIST calibration)."""
    if isinstance(graph, str):
        model = Path(graph).stem
        out = work / model
        res = export(graph, out, exit_threshold=0.9, data_dir=data_dir)
    else:
        model = graph.name
        out = work / model
        res = export("(graph)", out, graph=graph, calibration=calibration, exit_threshold=0.9)
    m = res.manifest
    layers = {e.name: e for e in m.all_layers()}
    counts = {core: profile_layers(out, board, runs=3) for core, board in boards.items()}
    rows = []
    for name, e in layers.items():
        row = {"layer": name, "kernel": e.kernel, "macs": e.macs, "weight_bytes": e.weight_bytes}
        for core in boards:
            n = counts[core][name]
            row[f"{core}_instructions"] = n
            row[f"{core}_per_mac"] = round(n / e.macs, 3) if e.macs else None
        rows.append(row)
    return {
        "model": model,
        "peak_ram_bytes": m.peak_ram_bytes,
        "arena_bytes": m.ram.arena_bytes,
        "scratch_bytes": m.ram.scratch_bytes,
        "weight_bytes": m.totals.all.weight_bytes,
        "head_weight_bytes": m.totals.head.weight_bytes,
        "macs": m.totals.all.macs,
        "layers": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="M3,M4,M7")
    ap.add_argument("--json", default=None)
    ap.add_argument("--checkpoint", action="append", default=[], help="Trained checkpoints to measure instead.")
    ap.add_argument("--data-dir", default=None, help="MNIST, to calibrate the checkpoints on.")
    args = ap.parse_args(argv)
    boards = {c: BOARDS[c] for c in args.cores.split(",")}
    calibration = np.random.default_rng(1).uniform(0, 1, (64, 784))
    heads = args.checkpoint or [blenet_head(False), blenet_head(True)]
    results = []
    with tempfile.TemporaryDirectory(prefix="mcuflow-bench-conv-") as tmp:
        for head in heads:
            r = measure(head, calibration, Path(tmp), boards, args.data_dir)
            results.append(r)
            print(f"{r['model']}: weights {r['weight_bytes']:,} B (head {r['head_weight_bytes']:,} B), "
                  f"MACs {r['macs']:,}, peak RAM {r['peak_ram_bytes']:,} B (arena {r['arena_bytes']:,}, "
                  f"scratch {r['scratch_bytes']:,})")  # fmt: skip
            for row in r["layers"]:
                per = ", ".join(
                    f"{c} {row[f'{c}_instructions']:,.0f} ({row[f'{c}_per_mac'] or 0:.2f}/MAC)" for c in boards
                )
                print(
                    f"  {row['layer']:<12} {row['kernel']:<16} MACs {row['macs']:>7,} w {row['weight_bytes']:>6,} B  {per}"
                )
    if args.json:
        atomic.write_text(Path(args.json), json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
