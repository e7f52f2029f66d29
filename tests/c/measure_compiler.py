"""Compiler figures for docs/results-compiler.md.

    python tests/c/measure_compiler.py CKPT --data-dir DIR [--threshold 0.9]

Prints markdown: export wall time, head bytes per storage format, C-vs-reference mismatches on
the 10,000 MNIST test images, and int8 vs float end-to-end accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from c.compiler_support import build_harness, mnist, run_harness  # noqa: E402

import mcuflow  # noqa: E402
from mcuflow import reference  # noqa: E402
from mcuflow.export import export  # noqa: E402
from mcuflow.manifest import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--threshold", type=float, default=0.9)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mcuflow-measure-"))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = export(args.ckpt, tmp / "lib", data_dir=args.data_dir, exit_threshold=args.threshold)
        times.append(time.perf_counter() - t0)
    print(f"export wall time (3 runs, in-process): {', '.join(f'{t:.2f}' for t in times)} s")
    print("\n| format | weight bytes | index bytes | total | x nnz |\n|---|---:|---:|---:|---:|")
    for fmt in ("dense", "csr", "fixed", "index_free"):
        r = export(args.ckpt, tmp / fmt, data_dir=args.data_dir, force_format=fmt, calibration_samples=100)
        h = r.manifest.totals.head
        tot = h["weight_bytes"] + h["index_bytes"]
        print(f"| {fmt} | {h['weight_bytes']} | {h['index_bytes']} | {tot} | {tot / h['nnz']:.3f} |")
    print(f"\nauto: {[m.format for m in res.manifest.head]}, static RAM {res.manifest.ram.static_bytes} B")

    test = mnist(Path(args.data_dir), "test")
    x = reference.pixels_to_input(test.images)
    q = res.model
    exe = build_harness(res.directory, tmp / "harness")
    t0 = time.perf_counter()
    out = run_harness(exe, x, len(q.exits), q.num_classes, q.intermediate_len, tmp)
    t_c = time.perf_counter() - t0
    ref = reference.run(load_model(res.directory), x)
    ex = ref.exited.astype(bool)
    mism = {
        "exit decisions": int((out["exited"] != ref.exited).sum()),
        "labels (exited)": int((out["label"][ex] != ref.label[ex]).sum()),
        "confidence_q15 (exited)": int((out["confidence_q15"][ex] != ref.confidence_q15[ex]).sum()),
        "exit logits (bytes)": int((out["logits"][:, 0] != ref.exit_logits[0]).sum()),
        "intermediate (bytes, not exited)": int((out["intermediate"][~ex] != ref.intermediate[~ex]).sum()),
    }
    print(f"\nC (gcc -O2) vs reference on {len(x)} test images ({t_c:.2f} s for the C process):")
    for k, v in mism.items():
        print(f"- {k}: {v} mismatches")

    inter = reference.dequantize(ref.intermediate, q.intermediate_scale, q.intermediate_zp)
    tail = reference.tail_forward(res.directory / "tail.npz", inter).argmax(1)
    int8_pred = np.where(ex, ref.label, tail)
    model = mcuflow.load(args.ckpt)
    xf = torch.from_numpy(test.images.reshape(-1, 784).astype(np.float32) / 255.0)
    with torch.no_grad():
        exits, final = model(xf)
    conf, lab = torch.softmax(exits[0], 1).max(1)
    f_exit = (conf >= args.threshold).numpy()
    float_pred = np.where(f_exit, lab.numpy(), final.argmax(1).numpy())
    y = test.labels
    print(f"\nthreshold {args.threshold}:")
    print(
        f"- end-to-end accuracy: float {100 * (float_pred == y).mean():.2f} %, int8 {100 * (int8_pred == y).mean():.2f} %"
    )
    print(f"- exit rate: float {100 * f_exit.mean():.2f} %, int8 {100 * ex.mean():.2f} %")
    print(
        f"- without exits (head + tail only): float {100 * (final.argmax(1).numpy() == y).mean():.2f} %, "
        f"int8 {100 * (tail == y).mean():.2f} %"
    )
    print(
        f"- exit alone: float {100 * (lab.numpy() == y).mean():.2f} %, int8 {100 * (ref.exit_label[0] == y).mean():.2f} %"
    )


if __name__ == "__main__":
    main()
