"""``mcuflow export``: checkpoint or ONNX -> IR -> passes -> C library, export.json, tail files.

The output directory is written atomically: everything goes to a temporary directory beside
it, renamed into place at the very end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcuflow.codec.compress import LinkConfig
from mcuflow.codegen import render_library, render_link_config, render_packaging
from mcuflow.errors import ConfigError, DataError, McuflowError
from mcuflow.frontend import graph_from_onnx, lower_model
from mcuflow.frontend.torch_check import check_lowering
from mcuflow.frontend.torch_frontend import LoweredChain
from mcuflow.ir.graph import Graph, Linear, Relu
from mcuflow.ir.packed import FORMATS
from mcuflow.ir.quantized import QModel
from mcuflow.manifest import WEIGHTS, ExportManifest, RawToInput, TailFiles, manifest_of, weight_arrays
from mcuflow.passes import choose_formats, fuse_relu, plan_kernels, plan_memory, quantize
from mcuflow.passes.quantize import DEFAULT_EXIT_THRESHOLD, InputQuant, threshold_q15
from mcuflow.reference.agreement import QuantCheck

DEFAULT_CALIBRATION_SAMPLES = 1000


@dataclass
class ExportResult:
    directory: Path
    model: QModel
    manifest: ExportManifest  # what export.json holds
    seconds: float
    notes: list[str] = field(default_factory=list)


def compile_graph(
    graph: Graph,
    calibration: np.ndarray,
    per_channel: bool = True,
    exit_threshold: float = DEFAULT_EXIT_THRESHOLD,
    force_format: str | None = None,
    small_ram: bool = False,
    input_quant: InputQuant | None = None,
) -> QModel:
    """The named passes in order: fuse_relu -> quantize -> choose_formats -> plan_kernels -> plan_memory."""
    fused = fuse_relu(graph)
    if not fused.head or not any(n.kind in ("linear", "conv2d") for n in fused.head):
        raise ConfigError("the head has no linear layer: nothing to run on the device")
    q = quantize(fused, calibration, per_channel=per_channel, exit_threshold=exit_threshold, input_quant=input_quant)
    choose_formats(q, force=force_format)
    plan_kernels(q, small_ram=small_ram)
    plan_memory(q)
    if q.intermediate_len > 65535:
        raise ConfigError(f"the head output has {q.intermediate_len} elements; the result struct holds at most 65535")
    return q


# ---------------------------------------------------------------- calibration data


@dataclass(frozen=True)
class CalibrationData:
    """Float inputs to calibrate on, and held-out ones (with labels when known) to check int8 against float."""

    x: np.ndarray  # (N, input_len)
    check_x: np.ndarray  # (M, input_len), M may be 0
    check_y: np.ndarray | None
    source: str
    normalization: RawToInput | None = None  # how raw data became these inputs, when known

    @classmethod
    def from_arrays(cls, x: np.ndarray, labels: np.ndarray | None = None, source: str = "caller-supplied"):
        """A caller's inputs: the last fifth is held out for the check when there are enough of them."""
        x = np.asarray(x, dtype=np.float64)
        held = len(x) // 5 if len(x) >= MIN_HELD_OUT * 5 else 0
        cut = len(x) - held
        y = None if labels is None or held == 0 else np.asarray(labels)[cut:]
        return cls(x[:cut], x[cut:], y, f"{source}, {cut} samples ({held} more held out for the int8 check)")

    @classmethod
    def from_dataset(cls, ds, n: int, source: str) -> CalibrationData:
        """The first ``n`` inputs to calibrate on, the next CHECK_SAMPLES (with labels) for the check."""
        part = ds.head(n + CHECK_SAMPLES)
        x = part.inputs(np.float64)
        norm = RawToInput(ds.normalization.shift, ds.normalization.divisor, ds.normalization.rule)
        return cls(x[:n], x[n:], np.asarray(part.y)[n:], source, norm)


MIN_HELD_OUT = 10
CHECK_SAMPLES = 500  # held-out inputs for the int8 check, after the calibration ones


def calibration_inputs(
    n: int,
    data_dir: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    record=None,
) -> CalibrationData:
    """The first ``n`` training inputs, normalised (N, width) float64, and the next ones (with their labels)
    held out for the int8 check.

    ``data`` is the user's data (``--data``), else MNIST from ``data_dir``, falling back to the bundled
    test subset in ``examples/`` when no MNIST directory is available. ``record`` (a checkpoint's
    :class:`~mcuflow.data.DataRecord`) gives the normalisation the model was trained with; without
    one, MNIST is pixels/255 and other data is normalised by its own rule (min/max of its training split).
    """
    if n <= 0:
        raise ConfigError(f"--calibration-samples must be positive, got {n}")
    from mcuflow import data as datasets

    if data is not None:
        ds = datasets.load_data(data).for_model("train", record)
        how = ds.normalization.describe() + ("" if record is not None else "; the model records none")
        n = min(n, len(ds))
        return CalibrationData.from_dataset(ds, n, f"{ds.source}, first {n} samples, inputs {how}")
    try:
        ds = datasets.mnist_split("train", data_dir, download=False, record=record)
    except DataError as err:
        try:
            split = datasets.bundled_test_subset()
        except DataError:
            raise DataError(
                f"no calibration data: {err}; pass --data, or --data-dir or MCUFLOW_DATA_DIR for MNIST"
            ) from None
        ds = datasets.mnist_dataset(split, "bundled MNIST test subset (examples/)", record)
    n = min(n, len(ds))
    return CalibrationData.from_dataset(ds, n, f"{ds.source}, first {n} images")


def _input_range_notes(q: QModel, calibration: np.ndarray) -> list[str]:
    """Say so when calibration inputs fall outside what the int8 input represents: the device clips them
    (a declared input scale too small for the data, say), and accuracy suffers."""
    lo, hi = (-128 - q.input_zp) * q.input_scale, (127 - q.input_zp) * q.input_scale
    cmin, cmax = float(np.min(calibration)), float(np.max(calibration))
    if cmin >= lo - q.input_scale / 2 and cmax <= hi + q.input_scale / 2:
        return []
    return [
        f"calibration inputs span [{cmin:.4g}, {cmax:.4g}] but the int8 input represents [{lo:.4g}, {hi:.4g}]: "
        "values outside are clipped on the device"
    ]


# ---------------------------------------------------------------- the tail


def tail_arrays(tail: LoweredChain) -> dict[str, np.ndarray] | None:
    """``tail.npz`` content for a lowered SplitNet tail (linear layers, each maybe with its ReLU), or None if
    it has none."""
    if not tail.nodes:
        return None
    arrays: dict[str, np.ndarray] = {}
    n = 0
    for node in tail.nodes:
        if isinstance(node, Relu):  # lower_tail checked that it follows a linear layer
            arrays[f"{n - 1}.relu"] = np.array(True)
            continue
        assert isinstance(node, Linear), node
        arrays[f"{n}.weight"] = node.weight.astype(np.float32)  # float32 in, float32 out: the same values
        arrays[f"{n}.columns"] = np.asarray(node.columns, dtype=np.int64)
        arrays[f"{n}.bias"] = node.bias.astype(np.float32)
        arrays[f"{n}.relu"] = np.array(False)
        n += 1
    arrays["n_layers"] = np.array(n)
    return arrays


def export_tail_onnx(model, width: int, path: Path) -> None:
    import torch

    dummy = torch.zeros(1, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.tail,
            (dummy,),
            str(path),
            input_names=["intermediate"],
            output_names=["logits"],
            dynamic_axes={"intermediate": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )


# ---------------------------------------------------------------- the command


def _check_board(board: str | None, q: QModel, notes: list[str]) -> None:
    """Refuse a model whose constants or static RAM cannot fit the board (the firmware needs more still;
    ``mcuflow build`` measures that)."""
    if not board:
        return
    from mcuflow.boards import load_board

    b = load_board(board)
    ram = q.plan.static_ram_bytes
    flash_need = model_constant_bytes(q)
    if ram + b.stack_bytes > b.ram_bytes:
        raise ConfigError(
            f"the model needs {ram:,} bytes of static RAM (arena {q.plan.arena_bytes:,}, scratch "
            f"{q.plan.scratch_bytes:,}, exit flags {q.plan.state_bytes}) plus a {b.stack_bytes:,}-byte stack; "
            f"board {b.name} has {b.ram_bytes:,}"
        )
    if flash_need > b.flash_bytes - b.boot2_bytes:
        raise ConfigError(
            f"the model's weights and constants need {flash_need:,} bytes of flash; board {b.name} has {b.flash_bytes:,}"
        )
    notes.append(
        f"board {b.name}: {ram:,} B static RAM of {b.ram_bytes:,} B, "
        f"{flash_need:,} B weights and constants of {b.flash_bytes:,} B flash"
    )


def model_constant_bytes(q: QModel) -> int:
    """Flash the model's constants take: weights, indices, biases, multipliers, shifts and exit tables."""

    def rows(layer) -> int:  # biases, multipliers and shifts: one per output row or output channel
        return layer.out_shape.c if layer.kind == "conv" else 0 if layer.kind == "pool" else layer.n_out

    layers = sum(layer.packed.total_bytes + 9 * rows(layer) for layer in q.all_layers() if layer.packed is not None)
    return layers + sum(ex.lut.nbytes for ex in q.exits)


def _check_quantization(graph: Graph, q: QModel, cal: CalibrationData, lowered) -> QuantCheck | None:
    """Float vs int8 answers on the held-out inputs (or on the calibration inputs when none are held out)."""
    from mcuflow.reference.agreement import check_quantization

    held = len(cal.check_x) > 0
    x = cal.check_x if held else cal.x
    if len(x) == 0:
        return None
    tail = tail_arrays(lowered.tail) if lowered is not None else None
    return check_quantization(graph, q, x, labels=cal.check_y if held else None, tail=tail, held_out=held)


LINK_CONFIG_HEADER = "mcuflow_link_config.h"


def _link_config(q: QModel, calibration: np.ndarray, threshold: int, topk: int, bits: int, shift: int | None):
    """The OFFLOAD compression settings; narrow codes take their shift from the calibration range."""
    from mcuflow import reference
    from mcuflow.passes.link_compression import resolve_link

    inter = None
    if bits < 8 and shift is None:
        x = reference.quantize_input(calibration, q.input_scale, q.input_zp)
        inter = reference.run(q, x).intermediate
    return resolve_link(q, inter, threshold=threshold, topk=topk, bits=bits, shift=shift)


def export(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    board: str | None = None,
    exit_threshold: float = DEFAULT_EXIT_THRESHOLD,
    force_format: str | None = None,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    data_dir: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    per_channel: bool = True,
    overwrite: bool = True,
    calibration: np.ndarray | None = None,
    prune_threshold: int = 0,
    prune_topk: int = 0,
    link_bits: int = 8,
    link_shift: int | None = None,
    small_ram: bool = False,
    input_scale: float | None = None,
    input_zero_point: int | None = None,
    input_range: tuple[float, float] | None = None,
    calibration_labels: np.ndarray | None = None,
    graph: Graph | None = None,
) -> ExportResult:
    """Compile a checkpoint (``.pt``) or ONNX file (``.onnx``) into ``out_dir``, atomically.

    Calibration takes ``calibration`` when given, else the first ``calibration_samples`` training inputs
    of ``data`` (the user's, see :func:`mcuflow.data.load_data`) or of MNIST, normalised as the
    checkpoint's data record says. ``graph``: a float IR graph to compile instead of reading ``source``
    (a hand-built or already lowered head; no tail is exported)."""
    t0 = time.perf_counter()
    source, out_dir = Path(source), Path(out_dir)
    notes: list[str] = []
    # Check the options before any slow work, so a typo fails fast.
    threshold_q15(exit_threshold)
    if force_format is not None and force_format not in FORMATS:
        raise ConfigError(f"unknown storage format {force_format!r}; choose one of {', '.join(FORMATS)}")
    LinkConfig(prune_threshold, prune_topk, link_bits).validate()
    input_quant = InputQuant.declared(input_scale, input_zero_point, input_range)
    if calibration is None and calibration_samples <= 0:
        raise ConfigError(f"--calibration-samples must be positive, got {calibration_samples}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a directory")
    if out_dir.exists() and not overwrite:
        raise ConfigError(f"{out_dir} already exists")
    model = lowered = record = None
    if graph is not None:
        pass
    elif source.suffix.lower() == ".onnx":
        graph = graph_from_onnx(source)
    else:
        from mcuflow.checkpoint import load, model_hash
        from mcuflow.data import DataRecord

        model = load(source)
        record = DataRecord.from_meta(getattr(model, "meta", None), str(source))
        lowered = lower_model(model, model_hash(model), name=source.stem)
        graph = lowered.graph
    if calibration is None:
        cal = calibration_inputs(calibration_samples, data_dir, data, record)
    else:
        cal = CalibrationData.from_arrays(calibration, calibration_labels)
    if cal.x.ndim != 2 or graph.input_len != cal.x.shape[1]:
        trained_on = f"; it was trained on {record.source}: pass --data" if record and data is None else ""
        raise ConfigError(
            f"the model takes {graph.input_len} inputs but the calibration data has shape {tuple(cal.x.shape)}"
            f"{trained_on}"
        )
    notes.append(f"calibration: {cal.source}")
    q = compile_graph(graph, cal.x, per_channel, exit_threshold, force_format, small_ram, input_quant)
    if lowered is not None:
        check_lowering(model, lowered, cal.x)  # the graph computes what the trained model does
        if lowered.whole_on_device:
            notes.append("whole model on the device: its last layer answers every sample no exit takes (exit 'final')")
    q.input_source = input_quant.source if input_quant else f"calibration range [{cal.x.min():g}, {cal.x.max():g}]"
    if cal.normalization is not None:
        n = cal.normalization
        q.raw_to_input = f"x = (raw - {n.shift:g}) / {n.divisor:g} ({n.rule})"
    notes.extend(_input_range_notes(q, cal.x))
    check = _check_quantization(graph, q, cal, lowered)
    if check is not None:
        notes.append(("" if check.passed else "WARNING: ") + check.describe()
                     + ("" if check.passed else f", below the {100 * check.bound:.0f}% bound"))  # fmt: skip
    q.notes = notes
    link = _link_config(q, cal.x, prune_threshold, prune_topk, link_bits, link_shift)
    _check_board(board, q, notes)
    files = {**render_library(q), **render_packaging(q)}
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as err:
        raise ConfigError(f"cannot write the export to {out_dir}: {err.strerror or err}") from None
    try:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        np.savez(tmp / WEIGHTS, **weight_arrays(q))
        (tmp / LINK_CONFIG_HEADER).write_text(render_link_config(link))
        if lowered is not None:
            arrays = tail_arrays(lowered.tail)
            if arrays is not None:
                np.savez(tmp / "tail.npz", **arrays)
                export_tail_onnx(model, q.intermediate_len, tmp / "tail.onnx")
        else:
            notes.append("ONNX source: no tail exported (the ONNX file holds the head and exits only)")
        tail = TailFiles(onnx="tail.onnx", npz="tail.npz") if (tmp / "tail.npz").exists() else None
        written = [*files, LINK_CONFIG_HEADER, WEIGHTS, *([tail.npz, tail.onnx] if tail else [])]
        manifest = manifest_of(
            q, link, tail=tail, files=written, notes=notes, check=check, raw=cal.normalization,
            seconds=time.perf_counter() - t0,
        )  # fmt: skip
        manifest.write(tmp)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, McuflowError):
            raise ConfigError(f"cannot write {out_dir}: {err}") from None
        raise
    return ExportResult(out_dir, q, manifest, time.perf_counter() - t0, notes)
