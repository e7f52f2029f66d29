"""How fast QEMU's emulated UART takes bytes in, and what that allows a HIL session.

    python bench/uart_rate.py [--boards qemu-mps2-an386,...] [--bytes 20000] [--repeats 3] [--data-dir D]

For each board it builds the paper model's serving firmware, then times the device swallowing a burst
of ``--bytes`` junk bytes (no 0x00 in it: the device's framer discards the over-long "frame") followed
by a HELLO round trip, minus a lone HELLO round trip. That is the emulator's receive cost per byte,
which bounds any protocol: a session cannot beat ``1 / (bytes down per sample x cost per byte)``.

With ``--data-dir`` it also estimates how small a lossless MNIST input could get: the ideal code
length of each test image under a static context model (96 contexts from the four causal neighbours,
counts from the 60,000 training images). Real coders do a little worse than this estimate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET_SAMPLES_PER_SECOND = 500


def build_firmware(board: str, work: Path) -> Path:
    from mcuflow.build import build
    from mcuflow.export import export

    export_dir = work / "export"
    if not (export_dir / "export.json").is_file():
        export(ROOT / "examples" / "paper_sparse.pt", export_dir, calibration_samples=200, data_dir=None)
    return build(export_dir, board).elf


def receive_cost_us(elf: Path, board: str, n_bytes: int) -> float:
    """Microseconds per byte the device takes to receive ``n_bytes`` of junk."""
    from mcuflow.link import DeviceClient
    from mcuflow.link.transport import SerialTransport
    from mcuflow.qemu import QemuSession, thread_on_cpu

    with QemuSession(elf, board) as q, thread_on_cpu(0):
        client = DeviceClient(SerialTransport.wrap(q.serial, q.url or ""), timeout=30.0)
        client.hello()
        t0 = time.perf_counter()
        client.hello()
        lone = time.perf_counter() - t0
        t0 = time.perf_counter()
        q.write(b"\x00" + b"\x55" * n_bytes + b"\x00")
        client.hello()
        burst = time.perf_counter() - t0
    return (burst - lone) / n_bytes * 1e6


def lossless_estimate_bytes(data_dir: str) -> float:
    """Mean ideal code length (bytes) of the MNIST test images under a static 96-context model."""
    from mcuflow.data import load_mnist

    def contexts(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.zeros((len(images), 29, 30), np.int16)
        p[:, 1:, 1:29] = images
        x, a, b, c, d = p[:, 1:, 1:29], p[:, 1:, :28], p[:, :-1, 1:29], p[:, :-1, :28], p[:, :-1, 2:30]
        nonzero = (a > 0) + 2 * (b > 0) + 4 * (c > 0) + 8 * (d > 0)
        gradient = np.digitize(abs(a - c) + abs(b - c) + abs(d - b), [1, 16, 64, 160, 320])
        return (nonzero * 6 + gradient).astype(np.int8).ravel(), x.astype(np.uint8).ravel()

    def chunks(images: np.ndarray, size: int = 5000):  # a few hundred MB at a time, not gigabytes
        for start in range(0, len(images), size):
            yield contexts(images[start : start + size])

    counts = np.full((96, 256), 0.05)
    for k, s in chunks(load_mnist("train", data_dir, download=False).images):
        counts += np.bincount(k.astype(np.int64) * 256 + s, minlength=96 * 256).reshape(96, 256)
    log_prob = np.log2(counts / counts.sum(1, keepdims=True))
    test = load_mnist("test", data_dir, download=False).images
    bits = sum(-log_prob[k, s].sum() for k, s in chunks(test))
    return float(bits / 8 / len(test))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default="qemu-mps2-an386", help="comma-separated QEMU boards")
    ap.add_argument("--bytes", type=int, default=20000, help="junk bytes per burst")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", help="MNIST directory: also estimate the lossless input size")
    ap.add_argument("--down", type=float, default=251.5, help="bytes down per sample today (mcuflow hil)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mcuflow-uart-") as tmp:
        for board in args.boards.split(","):
            elf = build_firmware(board, Path(tmp))
            costs = [receive_cost_us(elf, board, args.bytes) for _ in range(args.repeats)]
            cost = statistics.median(costs)
            ceiling = 1e6 / (args.down * cost)
            budget = 1e6 / (TARGET_SAMPLES_PER_SECOND * cost)
            print(f"{board}: {cost:.1f} us per received byte (median of {', '.join(f'{c:.1f}' for c in costs)})")
            print(f"  {args.down:.1f} B down per sample caps a session at {ceiling:.0f} samples/s;")
            print(f"  {TARGET_SAMPLES_PER_SECOND} samples/s needs at most {budget:.0f} B down per sample")
    if args.data_dir:
        print(f"lossless MNIST input, static context model: {lossless_estimate_bytes(args.data_dir):.1f} B per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
