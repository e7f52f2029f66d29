"""Host-in-the-loop sessions: export, build, boot QEMU, stream test samples, report.

One session checks the whole system at once: every device answer is compared
with the numpy integer reference (class, exit decision, intermediate bytes), so
``parity_mismatches`` is the bit-exactness verdict of the firmware on real data,
and the same run measures accuracy, exit rate, bytes on the wire, the device's
own instruction counter and throughput.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuflow import exitrule, jsonshape
from mcuflow.data import DataRecord, Dataset
from mcuflow.errors import ConfigError, DataError
from mcuflow.hil_result import (
    Budget,
    ComponentSize,
    ExportSummary,
    FaultSession,
    FeedSummary,
    HilResult,
    LinkCompression,
    LinkCounters,
    LinkSettings,
    ParityExample,
    QuantizationSummary,
    TradeoffRow,
    write_result,
)
from mcuflow.manifest import Quantization

UNFINISHED = -1  # the answer of an offloaded sample no host tail could finish
QUANT_LOSS_BOUND_POINTS = 1.0  # more accuracy lost to int8 than this is not a PASS

# A real UART at 115200 baud sends 11,520 bytes/s with 8N1 framing (10 bits a byte).
BAUD_115200_BYTES_PER_S = 115200 / 10
DEFAULT_SAMPLES = 1000
FEEDS = ("auto", "replay", "host")
FRAMES = ("auto", "lean", "full")


@dataclass
class HilData:
    """The session's test samples, normalised as the model's training data was."""

    samples: Dataset
    source: str

    @property
    def labels(self) -> np.ndarray:
        return self.samples.y


def load_test_data(
    data_dir: str | os.PathLike | None,
    samples: int | None,
    data: str | os.PathLike | None = None,
    record: DataRecord | None = None,
) -> HilData:
    """The test split of ``data`` (the user's) when given; else MNIST's test images from ``data_dir`` (or
    $MCUFLOW_DATA_DIR), else the bundled 500. ``record`` (the checkpoint's) says how to normalise them."""
    from mcuflow.data import bundled_test_subset, load_data, mnist_dataset, mnist_split, resolve_data_dir

    hint = ""
    if data is not None:
        ds = load_data(data).for_model("test", record)
        source = ds.source
    elif data_dir is not None or os.environ.get("MCUFLOW_DATA_DIR"):
        ds = mnist_split("test", data_dir, download=data_dir is None, record=record)
        source = f"MNIST test set in {resolve_data_dir(data_dir)}"
    else:
        source, hint = "bundled MNIST test subset (examples/)", "; pass --data-dir"
        ds = mnist_dataset(bundled_test_subset(), source, record)
    if samples is not None:
        if samples <= 0:
            raise ConfigError(f"--samples must be positive, got {samples}")
        if samples > len(ds):
            raise DataError(f"asked for {samples} samples but the {source} has {len(ds)}{hint}")
        ds = ds.head(samples)
    elif len(ds) > DEFAULT_SAMPLES:
        ds = ds.head(DEFAULT_SAMPLES)
    return HilData(ds, source)


def float_predictions(model, x: np.ndarray, exit_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The float model's end-to-end answer at ``exit_threshold`` (max softmax), and its final-layer answer.

    ``x`` holds the normalised inputs the model takes; uint8 arrays are MNIST images (pixels / 255)."""
    import torch

    a = np.asarray(x)
    if a.dtype == np.uint8:
        a = a.reshape(len(a), -1).astype(np.float32) / 255.0
    x = torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32))
    with torch.no_grad():
        exit_logits, final = model(x)
    pred = final.argmax(1).numpy()
    best = [torch.softmax(logits, 1).max(1) for logits in exit_logits]
    decision = exitrule.decide(
        [conf.numpy() for conf, _ in best], exit_threshold, attach=model.exit_points, samples=len(a)
    )
    return decision.answer([cls.numpy() for _, cls in best], pred), pred


def float_predictions_of_graph(graph, x: np.ndarray, thresholds: list[float], tail) -> tuple[np.ndarray, np.ndarray]:
    """The same for a model given as a float graph (an ONNX head): the exits' answers, the rest from
    ``tail`` (a Tail) on the head output, or UNFINISHED without one."""
    from mcuflow.reference.agreement import _softmax_confidence

    a = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    exit_logits, head_out, _ = graph.forward(a)
    final = np.full(len(a), UNFINISHED) if tail is None else np.argmax(tail.logits(head_out), axis=1)
    decision = exitrule.decide(
        [_softmax_confidence(z) for z in exit_logits], thresholds, attach=[e.at for e in graph.exits], samples=len(a)
    )
    return decision.answer([z.argmax(axis=1) for z in exit_logits], final), final


@dataclass
class ExportFacts:
    """What a session needs from ``export.json``."""

    model_hash: str
    intermediate_len: int
    intermediate_scale: float
    intermediate_zp: int
    link: LinkSettings | None
    summary: ExportSummary
    quantization: Quantization


def read_export_facts(export_dir: Path) -> ExportFacts:
    """What a session needs of the export, from its typed manifest."""
    from mcuflow.manifest import ExportManifest

    m = ExportManifest.read(export_dir)
    plain = m.to_json()
    try:
        return ExportFacts(
            model_hash=m.model_hash,
            intermediate_len=m.intermediate_len,
            intermediate_scale=m.quantization.intermediate.scale,
            intermediate_zp=m.quantization.intermediate.zero_point,
            link=jsonshape.load(LinkSettings, plain["link"], "link"),
            summary=ExportSummary.of(m),
            quantization=m.quantization,
        )
    except jsonshape.ShapeError as err:
        raise ConfigError(f"{export_dir / 'export.json'} is not an export this mcuflow reads: {err}") from None


def reference_predictions(export_dir: Path, inputs: np.ndarray, tail, facts: ExportFacts):
    """The numpy int8 reference for every sample, finished by the same host tail.

    The intermediate goes through the export's link compression (pruning, narrow codes), so
    ``ref.link.codes`` is what the device sends and the tail sees exactly that."""
    from mcuflow import reference
    from mcuflow.manifest import link_config as link_from_export
    from mcuflow.manifest import load_model

    q = load_model(export_dir)
    ref = reference.run(q, inputs)
    ref.link = reference.link_offload(
        ref.intermediate, facts.intermediate_scale, facts.intermediate_zp, link_from_export(export_dir)
    )
    if tail is None:  # no host tail (an ONNX head without --tail): offloads stay unfinished
        tail_pred = np.full(len(inputs), UNFINISHED)
    else:
        tail_pred = np.argmax(tail.logits(ref.link.dequantize()), axis=1)
    pred = np.where(ref.exited.astype(bool), ref.label, tail_pred)
    return ref, pred, tail_pred


TRADEOFF_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0)


def threshold_tradeoff(
    ref,
    tail_pred,
    labels,
    bytes_local: float | None,
    bytes_offload: float | None,
    attach: list[int] | None = None,
    always: list[bool] | None = None,
) -> list[TradeoffRow]:
    """What other exit thresholds would have given, from the int8 reference's exit confidences.

    The device's rule (:mod:`mcuflow.exitrule`) with one threshold for every exit, in Q15; ``attach``
    is the exits' attach positions (None: exit-index order). An exit marked in ``always`` (a model's
    final layer on the device, threshold 0) keeps answering at every threshold. Bytes up use the
    session's measured frame sizes.
    """
    from mcuflow.passes.quantize import threshold_q15

    rows = []
    for t in TRADEOFF_THRESHOLDS:
        thresholds = [0 if a else threshold_q15(t) for a in always or [False] * len(ref.exit_confidence_q15)]
        decision = exitrule.decide(ref.exit_confidence_q15, thresholds, attach=attach, samples=len(tail_pred))
        pred = decision.answer(ref.exit_label, np.asarray(tail_pred))
        rate = float(decision.exited.mean()) if len(pred) else 0.0
        up = None
        if bytes_local is not None and bytes_offload is not None:
            up = rate * bytes_local + (1 - rate) * bytes_offload
        rows.append(
            TradeoffRow(
                threshold=t,
                exit_rate=rate,
                offload_rate=1 - rate,
                accuracy=float(np.mean(pred == labels)),
                bytes_up_per_sample=up,
            )
        )
    return rows


def parity_problem(rec, ref, i: int) -> str | None:
    """Why a device answer differs from the reference, or None if it is bit-exact."""
    if rec.status == "local":
        if not ref.exited[i]:
            return "device exited early, reference offloads"
        if rec.exit_index != int(ref.exit_index[i]) or rec.prediction != int(ref.label[i]):
            return f"exit {rec.exit_index}/class {rec.prediction} vs reference {ref.exit_index[i]}/{ref.label[i]}"
        return None
    if rec.status == "offload":
        if ref.exited[i]:
            return "device offloads, reference exits early"
        # parity on what crossed the link: the pruned, possibly narrowed codes (docs/protocol.md)
        if rec.intermediate is None or not np.array_equal(np.asarray(rec.intermediate, np.int8), ref.link.codes[i]):
            return "intermediate bytes differ"
        return None
    return None  # lost or refused samples are counted separately


def run_hil(
    checkpoint: str | os.PathLike, board: str, *, workdir: str | os.PathLike | None = None, **options
) -> HilResult:
    """Run one session and return its results (:class:`~mcuflow.hil_result.HilResult`).

    The export and firmware go to ``workdir`` when given (and stay), else to a temporary
    directory removed afterwards. ``options`` are those of :func:`_run_hil`.
    """
    if workdir is not None:
        return _run_hil(checkpoint, board, Path(workdir), **options)
    with tempfile.TemporaryDirectory(prefix="mcuflow-hil-") as tmp:
        result = _run_hil(checkpoint, board, Path(tmp), **options)
    return dataclasses.replace(result, workdir=None)


def _run_hil(
    checkpoint: str | os.PathLike,
    board: str,
    work: Path,
    *,
    samples: int | None = None,
    data_dir: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    exit_threshold: float | None = None,
    calibration_samples: int | None = None,
    force_format: str | None = None,
    timeout: float = 5.0,
    retries: int = 1,
    devices: int = 1,
    show_progress: bool = True,
    log=print,
    prune_threshold: int = 0,
    prune_topk: int = 0,
    link_bits: int = 8,
    link_shift: int | None = None,
    faults: str | None = None,
    fault_seed: int = 0,
    fragment: str | int = "auto",
    profile: bool = True,
    input_quant: dict | None = None,
    tail_path: str | os.PathLike | None = None,
    emulate: bool = False,
    feed: str = "auto",
    frames: str = "auto",
    replay_period: int = 0,
) -> HilResult:
    import mcuflow
    from mcuflow import export as exporter
    from mcuflow.boards import load_board
    from mcuflow.build import build
    from mcuflow.link import DeviceClient
    from mcuflow.link.replay import ReplayTotals, table_bytes
    from mcuflow.link.transport import SerialTransport
    from mcuflow.manifest import ExportManifest
    from mcuflow.progress import progress
    from mcuflow.qemu import QemuSession, thread_on_cpu
    from mcuflow.reference import quantize_input
    from mcuflow.tail import (
        NchwTail,
        OnnxTail,
        check_model_hash,
        check_shape,
        export_intermediate_shape,
        load_tail,
        run_replay,
        run_session,
    )

    t_start = time.perf_counter()
    b = load_board(board)
    machine = b.emulator(emulate)
    if machine is None:
        stand_in = f", or its image on QEMU {b.emulation.machine} with --emulate" if b.emulation else ""
        raise ConfigError(
            f"board {b.name} is hardware; hil runs QEMU boards{stand_in} (use `mcuflow run --port` on hardware)"
        )
    if b.qemu is None:  # a hardware image on its stand-in: its cycle counter (DWT) does not run there
        profile = False
    onnx_source = Path(checkpoint).suffix.lower() == ".onnx"
    model = None if onnx_source else mcuflow.load(checkpoint)
    if tail_path is not None and not Path(tail_path).is_file():
        raise ConfigError(f"--tail {tail_path} does not exist")
    threshold = exporter.DEFAULT_EXIT_THRESHOLD if exit_threshold is None else exit_threshold
    test = load_test_data(data_dir, samples, data, DataRecord.from_meta(getattr(model, "meta", None), str(checkpoint)))
    export_dir = work / "export"

    log(f"hil: exporting {checkpoint} (exit threshold {threshold:g})")
    kwargs = {}
    if calibration_samples is not None:
        kwargs["calibration_samples"] = calibration_samples
    t0 = time.perf_counter()
    exporter.export(
        checkpoint,
        export_dir,
        board=b.name,
        exit_threshold=threshold,
        force_format=force_format,
        data_dir=data_dir,
        data=data,
        prune_threshold=prune_threshold,
        prune_topk=prune_topk,
        link_bits=link_bits,
        link_shift=link_shift,
        **(input_quant or {}),
        **kwargs,
    )
    export_seconds = time.perf_counter() - t0
    layer_instructions = None
    if profile:  # before the protocol build: the selftest build takes the same output directory
        from mcuflow.profile import profile_layers

        log("hil: counting instructions per layer (selftest firmware)")
        layer_instructions = profile_layers(export_dir, b)
    log(f"hil: building firmware for {b.name}")
    t0 = time.perf_counter()
    built = build(export_dir, b)
    build_seconds = time.perf_counter() - t0
    log(f"hil: {built.summary()}")
    facts = read_export_facts(export_dir)

    # The device gets the normalised inputs quantised with the export's input scale and zero point
    # (for MNIST's pixels / 255 with scale 1/255 and zero point -128 that is exactly pixel - 128);
    # the float model sees the same normalised inputs.
    input_q = ExportManifest.read(export_dir).quantization.input
    inputs = quantize_input(test.samples.inputs(np.float64), input_q.scale, input_q.zero_point)
    tail = None  # an ONNX head has no tail of its own
    if tail_path is not None:
        tail = OnnxTail(Path(tail_path))
        fmap = export_intermediate_shape(export_dir)
        tail = NchwTail(tail, fmap) if fmap is not None else tail  # a torch-exported tail reads NCHW
    elif not onnx_source:
        tail = load_tail(model, export_dir)
    if tail is None:
        log("hil: no host tail (an ONNX head; give --tail tail.onnx): offloaded samples stay unfinished")
    ref, ref_pred, tail_ref_pred = reference_predictions(export_dir, inputs, tail, facts)
    if onnx_source:
        from mcuflow.frontend import graph_from_onnx

        thresholds = [e.threshold_q15 / 32768 for e in ExportManifest.read(export_dir).exits]
        float_e2e, float_final = float_predictions_of_graph(
            graph_from_onnx(checkpoint), test.samples.inputs(), thresholds, tail
        )
    else:
        float_e2e, float_final = float_predictions(model, test.samples.inputs(), threshold)

    devices = max(1, min(devices, len(inputs)))
    feed = choose_feed(feed, machine, inputs.shape, faults, b.name)
    lean = choose_frames(frames, feed)
    table = None
    if feed == "replay":  # the inputs go into each emulated device's memory, not down the link
        table = work / "replay_table.bin"
        table.write_bytes(table_bytes(inputs))
    where = f"{devices} emulated {b.name} devices" if devices > 1 else f"{b.name} ({machine.machine}) under QEMU"
    how = "replayed from device memory" if feed == "replay" else "sent by the host"
    log(f"hil: {len(inputs)} samples from the {test.source} on {where}, {how}, {'lean' if lean else 'full'} answers")
    replay_totals = ReplayTotals()
    records: list = []
    mismatches: list[ParityExample] = []
    correct = 0
    lock = threading.Lock()
    chunks = np.array_split(np.arange(len(inputs)), devices)

    def device_session(device: int, chunk: np.ndarray, bar) -> dict:
        """One emulated device serving ``chunk`` of the samples; records are re-indexed globally."""
        nonlocal correct
        # Each emulated device keeps to its own host CPU (see mcuflow.qemu.pin_to_cpu).
        # With several devices the host threads share the GIL, and pinning them apart costs more
        # than it saves (measured), so only a lone session joins its emulator's CPU.
        with (
            thread_on_cpu(device if devices == 1 else None),
            QemuSession(built.elf, b, cpu=device, emulate=emulate, replay_table=table) as q,
            contextlib.ExitStack() as on_exit,
        ):
            if faults is None:
                client = DeviceClient(
                    SerialTransport.wrap(q.serial, q.url or ""), timeout=timeout, retries=retries, lean=lean
                )
            else:  # through a fault-injecting proxy, with resends and re-HELLOs (mcuflow.link.faults)
                from mcuflow.link.faults import QemuFaultLink

                seed = fault_seed + (int(chunk[0]) if len(chunk) else 0)
                faulty = QemuFaultLink(
                    q, faults, seed, timeout=timeout, retries=max(retries, 3), log=log, fragment=fragment, lean=lean
                )
                on_exit.callback(faulty.close)
                client = faulty.client
            hello = client.hello(timeout=max(timeout, 10.0), retries=2)
            check_model_hash(hello.model_hash.hex(), facts.model_hash, "the export")
            check_shape(hello, export_dir)
            if feed == "replay":
                if hello.replay_count != len(inputs):
                    raise ConfigError(
                        f"the device's input table holds {hello.replay_count} samples, not the {len(inputs)} loaded"
                    )
                totals = ReplayTotals()
                stream = run_replay(
                    client, int(chunk[0]), len(chunk), tail, test.labels[chunk], keep_intermediate=True,
                    totals=totals, period=replay_period, timeout=timeout,
                )  # fmt: skip
            else:
                stream = run_session(
                    client, inputs[chunk], tail, test.labels[chunk], keep_intermediate=True, max_consecutive_lost=5
                )
            for rec in stream:
                rec.index = int(chunk[rec.index])
                problem = parity_problem(rec, ref, rec.index)
                with lock:
                    records.append(rec)
                    correct += bool(rec.correct)
                    if problem is not None:
                        mismatches.append(ParityExample(rec.index, problem))
                    bar.update(1, acc=correct / len(records))
            stats = client.stats.as_dict() if faults is None else faulty.stats()
            if feed == "replay":
                with lock:
                    replay_totals.merge(totals)
            # The session's results stand even if the goodbye is lost.
            with contextlib.suppress(Exception):
                client.bye(timeout=2.0)
        return stats

    with progress(len(inputs), f"hil {b.name}", enabled=show_progress) as bar:
        t_session = time.perf_counter()
        if devices == 1:
            link_stats = [device_session(0, chunks[0], bar)]
        else:
            with ThreadPoolExecutor(max_workers=devices) as pool:
                link_stats = list(pool.map(lambda d: device_session(d, chunks[d], bar), range(devices)))
        seconds = time.perf_counter() - t_session
    records.sort(key=lambda r: r.index)
    mismatches.sort(key=lambda m: m.index)

    counted = b.qemu is not None
    # Lean answers carry no instruction count: the device's own REPLAY_END totals give the means then.
    from_totals = any(r.instructions is None for r in records if r.status in ("local", "offload"))
    answered = [r for r in records if r.status in ("local", "offload")]
    local = [r for r in answered if r.status == "local"]
    offload = [r for r in answered if r.status == "offload"]
    n = len(records)
    up = sum(r.bytes_up for r in records)
    down = sum(r.bytes_down for r in records)
    labels = test.labels.astype(np.int64)
    bytes_local = sum(r.bytes_up for r in local) / len(local) if local else None
    bytes_offload = sum(r.bytes_up for r in offload) / len(offload) if offload else None
    return HilResult(
        board=b.name,
        qemu_machine=machine.machine,
        cpu=b.cpu,
        checkpoint=str(checkpoint),
        model_hash=facts.model_hash,
        data=test.source,
        exit_threshold=threshold,
        samples=n,
        answered=len(answered),
        lost=sum(r.status == "lost" for r in records),
        unfinished=sum(r.status == "offload" and r.prediction is None for r in records),
        errors=sum(r.status == "error" for r in records),
        accuracy=sum(bool(r.correct) for r in records) / n if n else None,
        float_accuracy=float(np.mean(float_e2e == labels)),
        float_final_accuracy=float(np.mean(float_final == labels)),
        reference_accuracy=float(np.mean(ref_pred == labels)),
        exit_rate=len(local) / len(answered) if answered else None,
        parity_mismatches=len(mismatches),
        parity_examples=mismatches[:10],
        bytes_up_per_sample=up / n if n else None,
        bytes_down_per_sample=down / n if n else None,
        bytes_per_offload=bytes_offload,
        bytes_per_local_result=bytes_local,
        # On a stand-in emulator the hardware image's DWT counter reads 0: not a measurement.
        device_instructions_mean=_mean_instructions(answered, counted, from_totals, replay_totals.instructions_mean),
        device_instructions_local_mean=_mean_instructions(
            local, counted, from_totals, replay_totals.instructions_local_mean
        ),
        device_instructions_offload_mean=_mean_instructions(
            offload, counted, from_totals, replay_totals.instructions_offload_mean
        ),
        instruction_unit=built.report.get("counter_unit", "instructions"),
        layer_instructions=layer_instructions,
        devices=devices,
        samples_per_second=n / seconds if seconds else None,
        session_seconds=seconds,
        link_seconds_per_sample_at_115200=(up + down) / n / BAUD_115200_BYTES_PER_S if n else None,
        samples_per_second_at_115200=n * BAUD_115200_BYTES_PER_S / (up + down) if up + down else None,
        link=LinkCounters.summed(link_stats),
        export_seconds=round(export_seconds, 3),
        build_seconds=round(build_seconds, 3),
        flash_bytes=built.report["flash_bytes"],
        ram_bytes=built.report["ram_bytes"],
        budget=Budget(**built.report["budget"]),
        export=facts.summary,
        components={name: ComponentSize(**sizes) for name, sizes in built.report.get("components", {}).items()},
        workdir=str(work),
        wall_seconds=round(time.perf_counter() - t_start, 3),
        tradeoff=threshold_tradeoff(
            ref,
            tail_ref_pred,
            labels,
            bytes_local,
            bytes_offload,
            attach=[ex.at for ex in facts.summary.exits],
            always=[ex.threshold_q15 == 0 for ex in facts.summary.exits],
        ),
        link_compression=_link_summary(facts, ref, offload, lean),
        quantization=_quantization_summary(facts.quantization, float_e2e, _int8_predictions(ref, tail, facts), labels),
        feed=FeedSummary(
            feed=feed,
            frames="lean" if lean else "full",
            period=replay_period if feed == "replay" else 0,
            instructions_from="device totals" if from_totals else "answers",
            replay_runs=replay_totals.runs,
            replay_requests=replay_totals.requests,
            replay_asked_again=replay_totals.asked_again,
            replay_rejected=replay_totals.rejected,
            replay_stale=replay_totals.stale,
        ),
        faults=None if faults is None else FaultSession(faults, fault_seed, devices),
    )


def choose_feed(feed: str, machine, shape: tuple[int, ...], faults: str | None, board: str) -> str:
    """ "replay" (the inputs in the emulated device's memory) or "host" (sent down the link) for ``feed``
    "auto" | "replay" | "host". "auto" replays where the board has a replay region the inputs fit, and
    sends them from the host for fault sessions (faults on the down link need host-fed inputs)."""
    from mcuflow.link.replay import table_capacity

    if feed not in FEEDS:
        raise ConfigError(f"--feed {feed!r}: choose one of {', '.join(FEEDS)}")
    if feed == "host":
        return "host"
    capacity = table_capacity(machine.replay_bytes, shape[1]) if machine.replay_bytes else 0
    if feed == "replay":
        if not machine.replay_bytes:
            raise ConfigError(f"board {board} has no replay region ([qemu] replay_addr); use --feed host")
        if shape[0] > capacity:
            raise ConfigError(
                f"{shape[0]:,} samples do not fit {board}'s replay region ({capacity:,} at most); "
                "use fewer --samples or --feed host"
            )
        return "replay"
    return "replay" if faults is None and 0 < shape[0] <= capacity else "host"


def choose_frames(frames: str, feed: str) -> bool:
    """Whether to ask for lean answers: ``frames`` "lean" | "full" | "auto" (lean when replaying: the
    device's totals then give the instruction counts lean answers leave out)."""
    if frames not in FRAMES:
        raise ConfigError(f"--frames {frames!r}: choose one of {', '.join(FRAMES)}")
    return frames == "lean" or (frames == "auto" and feed == "replay")


def _mean_instructions(records: list, counted: bool, from_totals: bool, totals_mean: float | None) -> float | None:
    """The mean head count of ``records``: from their answers, or (``from_totals``) the device's own."""
    if not counted or not records:
        return None
    if from_totals:
        return totals_mean
    return float(np.mean([r.instructions for r in records]))


def _per_layer_text(per_layer: dict[str, float] | None) -> str:
    if not per_layer:
        return ""
    return "; per layer " + ", ".join(f"{name} {count:,.0f}" for name, count in per_layer.items())


def _link_summary(facts: ExportFacts, ref, offload: list, lean: bool = False) -> LinkCompression:
    """The link settings and what they gave: measured OFFLOAD bytes against the reference's prediction
    and against the float32 / int8 dense baselines (docs/results-link.md), each in the session's framing
    (lean or full answers)."""
    from mcuflow.codec.compress import FLOAT32_BYTES
    from mcuflow.link.messages import lean_offload_wire_bytes
    from mcuflow.link.messages import offload_wire_bytes as full_wire_bytes

    offload_wire_bytes = lean_offload_wire_bytes if lean else full_wire_bytes

    n_mid = facts.intermediate_len
    off_idx = np.flatnonzero(~ref.exited.astype(bool))
    body = ref.link.body_bytes[off_idx]
    predicted_wire = float(np.mean([offload_wire_bytes(int(b)) for b in body])) if len(body) else None
    measured_wire = float(np.mean([r.bytes_up for r in offload])) if offload else None
    mean_body = float(body.mean()) if len(body) else None
    encs = np.bincount(ref.link.encoding[off_idx], minlength=4) if len(body) else np.zeros(4, int)
    return LinkCompression(
        config=facts.link,
        offloads=len(offload),
        tensor_bytes_per_offload=mean_body,
        payload_bytes_per_offload=None if mean_body is None else mean_body + 16,
        wire_bytes_per_offload_predicted=predicted_wire,
        wire_bytes_per_offload_measured=measured_wire,
        encodings_used={
            name: int(c) for name, c in zip(("dense", "bitmap", "index-value", "zero-runs"), encs, strict=True)
        },
        float32_tensor_bytes=FLOAT32_BYTES * n_mid,
        int8_tensor_bytes=n_mid,
        compression_vs_float32=None if not mean_body else FLOAT32_BYTES * n_mid / mean_body,
        compression_vs_int8=None if not mean_body else n_mid / mean_body,
        wire_compression_vs_float32=None
        if not measured_wire
        else offload_wire_bytes(FLOAT32_BYTES * n_mid) / measured_wire,
        wire_compression_vs_int8=None if not measured_wire else offload_wire_bytes(n_mid) / measured_wire,
    )


def _link_line(lc: LinkCompression) -> str:
    if not lc.offloads:
        return "link             no offloads"
    cfg = "dense int8" if lc.config is None else lc.config.label
    return (
        f"link             {cfg}: {lc.tensor_bytes_per_offload:.2f} B tensor, "
        f"{lc.wire_bytes_per_offload_measured:.2f} B on the wire per offload; "
        f"{lc.compression_vs_float32:.1f}x vs float32 ({lc.compression_vs_int8:.2f}x vs int8) tensor, "
        f"{lc.wire_compression_vs_float32:.2f}x frame"
    )


def _int8_predictions(ref, tail, facts: ExportFacts) -> np.ndarray:
    """The int8 reference's answers with the head output as it is, before link compression: what int8
    alone costs (the link's share is in the link compression summary)."""
    from mcuflow.reference import dequantize

    if tail is None:
        return np.where(ref.exited.astype(bool), ref.label, UNFINISHED)
    raw = dequantize(ref.intermediate, facts.intermediate_scale, facts.intermediate_zp)
    return np.where(ref.exited.astype(bool), ref.label, np.argmax(tail.logits(raw), axis=1))


def _quantization_line(q: QuantizationSummary) -> str:
    verdict = "within" if q.passed else "OVER"
    export = "" if q.export_agreement is None else f"; export check: {100 * q.export_agreement:.2f}% agreement"
    return (
        f"quantisation     int8 loses {q.loss_points:.2f} points against float ({verdict} the {q.bound_points:g}-point "
        f"bound); input q = round(x / {q.input_scale:.6g}) + {q.input_zero_point} ({q.input_source}){export}"
    )


def _quantization_summary(q: Quantization, float_pred, int8_pred, labels) -> QuantizationSummary:
    check = q.check
    return QuantizationSummary(
        input_scale=q.input.scale,
        input_zero_point=q.input.zero_point,
        input_source=q.input_source,
        loss_points=100 * float(np.mean(float_pred == labels) - np.mean(int8_pred == labels)),
        bound_points=QUANT_LOSS_BOUND_POINTS,
        export_agreement=None if check is None else check.agreement,
        export_check_samples=None if check is None else check.samples,
    )


def write_json(result: HilResult, path: str | os.PathLike) -> Path:
    """``result`` as ``mcuflow hil --json`` writes it (:func:`mcuflow.hil_result.read_result` reads it back)."""
    return write_result(result, path)


def summary_lines(r: HilResult) -> list[str]:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f}%"

    def num(x, fmt=",.0f"):
        return "n/a" if x is None else format(x, fmt)

    return [
        f"board            {r.board} ({r.cpu}, QEMU {r.qemu_machine})",
        f"samples          {r.samples:,} ({r.data}), lost {r.lost}, errors {r.errors}"
        + (f", {r.unfinished} offloads unfinished (no host tail; counted as wrong)" if r.unfinished else ""),
        f"accuracy         {pct(r.accuracy)} end to end (float {pct(r.float_accuracy)}, "
        f"int8 reference {pct(r.reference_accuracy)}, float final layer {pct(r.float_final_accuracy)})",
        f"early exit       {pct(r.exit_rate)} answered on the device at threshold {r.exit_threshold:g}",
        f"parity           {r.parity_mismatches} mismatches against the numpy reference",
        _quantization_line(r.quantization),
        f"device           {num(r.device_instructions_mean)} {r.instruction_unit} per inference (mean)"
        + _per_layer_text(r.layer_instructions),
        f"inputs           {_feed_text(r.feed)}",
        f"wire             {num(r.bytes_down_per_sample, ',.1f')} B down, {num(r.bytes_up_per_sample, ',.1f')} B up "
        f"per sample; {num(r.bytes_per_offload, ',.1f')} B per offload, {num(r.bytes_per_local_result, ',.1f')} B "
        f"per local result ({r.feed.frames} answers)",
        f"throughput       {num(r.samples_per_second, ',.0f')} samples/s under QEMU; at 115200 baud the link alone "
        f"would take {num(1000 * (r.link_seconds_per_sample_at_115200 or 0), ',.1f')} ms/sample "
        f"({num(r.samples_per_second_at_115200, ',.1f')} samples/s)",
        _link_line(r.link_compression),
        f"memory           flash {r.flash_bytes:,} of {r.budget.flash_bytes:,} B, "
        f"RAM {r.ram_bytes:,} of {r.budget.ram_bytes:,} B (static, excluding stack)",
    ]


def _feed_text(f: FeedSummary) -> str:
    if f.feed == "host":
        return "sent by the host over the link"
    pace = "free-running" if not f.period else f"paced every {f.period:,} counter units"
    again = f", {f.replay_asked_again:,} asked for again" if f.replay_asked_again else ""
    return (
        f"replayed from device memory ({pace}; {f.replay_runs} runs, {f.replay_requests} REPLAY requests{again}); "
        f"instructions from {f.instructions_from}"
    )


def fault_lines(r: HilResult) -> list[str]:
    """What the fault-injecting proxy did and what the link did about it; [] for a session without it."""
    if r.faults is None or r.link.faults is None:
        return []
    f, link, extra = r.faults, r.link, r.link.faults
    lines = [
        f"faults           {f.spec} (seed {f.seed}): {link.frames_sent:,} frames sent, "
        f"{link.retries:,} resent, {extra.device_frames_dropped + extra.frames_rejected_by_host:,} "
        f"rejected (CRC/COBS), {extra.rehellos} re-HELLOs, {extra.device_restarts} emulator reboots"
    ]
    if extra.fragment_transfers:
        lines.append(
            f"fragments        {extra.fragment_transfers:,} requests in parts: "
            f"{extra.fragment_parts_sent:,} parts sent ({extra.fragment_parts_resent:,} resent), "
            f"{extra.fragment_statuses:,} missing-part reports, {extra.fragment_commit_timeouts:,} COMMIT timeouts"
        )
    return lines
