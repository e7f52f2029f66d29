"""Measured, not estimated: a candidate exported and built for the board (model flash from the linker map,
RAM of the image and the model's static buffers), its selftest firmware run under QEMU (instructions per
layer, bit-exact against the reference), and its int8 answers on the validation split (the numpy
reference, bit-exact with the device, finished by the host tail): accuracy, exit rate and the bytes the
device sends per sample, each OFFLOAD's encoded size included.

A hardware board's cycle counter does not run under QEMU, so its instructions are counted on the QEMU
board of the same core (:data:`QEMU_FOR_CPU`); one instruction is taken as one cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError
from mcuflow.plan.estimate import OFFLOAD_WIRE_OVERHEAD, RESULT_WIRE_BYTES, expected_instructions
from mcuflow.plan.space import Candidate

QEMU_FOR_CPU = {"cortex-m3": "qemu-mps2-an385", "cortex-m4": "qemu-mps2-an386", "cortex-m7": "qemu-mps2-an500"}
CALIBRATION_SAMPLES = 1000


def counting_board(board: Board) -> Board:
    """The board whose selftest counts instructions: the board itself under QEMU, else a QEMU one of its core."""
    if board.qemu is not None:
        return board
    name = QEMU_FOR_CPU.get(board.cpu)
    if name is None:
        raise ConfigError(f"no QEMU board with a {board.cpu} to count {board.name}'s instructions on")
    return load_board(name)


@dataclass
class Measured:
    accuracy: float  # int8, validation split
    exit_rate: float  # answered at an early exit (not the final layer, not the host)
    instructions: float  # mean per inference over the validation split, from the measured per-layer counts
    instructions_max: float  # every device layer run
    model_flash: int  # the model's part of the image (linker map)
    flash: int  # the whole image
    ram: int  # the whole image's static RAM (stack not included)
    model_ram: int  # the model's static buffers
    bytes_per_sample: float
    layer_instructions: dict[str, float]
    selftest_passed: bool
    counted_on: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def measure(cand: Candidate, checkpoint: Path, board: Board, val, train, workdir: Path, log) -> Measured:
    from mcuflow import load
    from mcuflow.bringup import run_selftest
    from mcuflow.build import build
    from mcuflow.export import export
    from mcuflow.hil import read_export_facts, reference_predictions
    from mcuflow.manifest import ExportManifest
    from mcuflow.reference import quantize_input
    from mcuflow.tail import load_tail

    export_dir = workdir / "export"
    export(
        checkpoint,
        export_dir,
        board=board.name,
        exit_threshold=cand.exit_threshold,
        calibration=train.inputs()[:CALIBRATION_SAMPLES],
        prune_threshold=cand.prune_threshold,
        link_bits=cand.link_bits,
    )
    built = build(export_dir, board)
    model_flash = built.report["components"].get("model", {}).get("flash", 0)
    manifest = ExportManifest.read(export_dir)
    counter = counting_board(board)
    rep = run_selftest(export_dir, counter, runs=3, log=log)
    counts = rep.layer_counts

    model = load(checkpoint)
    facts = read_export_facts(export_dir)
    q = manifest.quantization.input
    inputs = quantize_input(val.inputs(np.float64), q.scale, q.zero_point)
    tail = None if cand.config().whole_on_device else load_tail(model, export_dir)
    ref, pred, _ = reference_predictions(export_dir, inputs, tail, facts)
    n_exits = len(cand.model["exits"])
    early = ref.exited.astype(bool) & (np.asarray(ref.exit_index) < n_exits)
    rate = float(early.mean())
    if cand.config().whole_on_device:
        bps = float(RESULT_WIRE_BYTES)
    else:
        offload = OFFLOAD_WIRE_OVERHEAD + ref.link.body_bytes
        bps = float(np.where(ref.exited.astype(bool), RESULT_WIRE_BYTES, offload).mean())

    head = [v for k, v in counts.items() if k.startswith("head.")]
    exits = [sum(v for k, v in counts.items() if k.startswith(f"exits.{e}.")) for e in range(n_exits)]
    at = [e["at"] for e in cand.model["exits"]]
    # The decisions and calls between layers: what the whole-head count holds beyond the layers the built-in
    # input ran (all of them, or those up to the exit it answered at).
    builtin_exited = bool(rep.samples and rep.samples[0].exited and n_exits)
    ran = sum(head[: at[0]]) + exits[0] if builtin_exited and at else sum(head) + sum(exits)
    overhead = max(0.0, (rep.head_count or 0.0) - ran)
    mean = overhead + expected_instructions(head, exits, at, rate)
    worst = overhead + sum(head) + sum(exits)
    return Measured(
        accuracy=float((pred == val.y).mean()),
        exit_rate=rate,
        instructions=float(mean),
        instructions_max=float(worst),
        model_flash=int(model_flash),
        flash=int(built.flash_bytes),
        ram=int(built.ram_bytes),
        model_ram=int(manifest.ram.static_bytes),
        bytes_per_sample=bps,
        layer_instructions=dict(counts),
        selftest_passed=bool(rep.passed),
        counted_on=counter.name,
    )
