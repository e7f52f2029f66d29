"""A small, complete HilResult for the report and result tests (no session needed)."""

from __future__ import annotations

import dataclasses

from mcuflow.hil_result import (
    Budget,
    ComponentSize,
    ExportSummary,
    FaultLinkCounters,
    FaultSession,
    FeedSummary,
    HilResult,
    LinkCompression,
    LinkCounters,
    LinkSettings,
    ParityExample,
    QuantizationSummary,
    TradeoffRow,
)
from mcuflow.manifest import ExitEntry, HeadLayers, LayerEntry, QParams, Range, Totals, TotalsByPart


def layer(name: str = "head.1", n_in: int = 800, n_out: int = 40, degree: int = 40) -> LayerEntry:
    nnz = n_out * degree
    return LayerEntry(
        name=name, n_in=n_in, n_out=n_out, degree=degree, pattern="structured", structured=None,
        format="index_free", kernel="mcuflow_fc_index_free", nnz=nnz, stored_values=nnz, weight_bytes=nnz,
        index_bytes=0, index_type=None, row_ptr_type=None, bias_bytes=4 * n_out, requant_bytes=5 * n_out,
        macs=nnz, relu=True, input=QParams(1 / 255, -128), output=QParams(0.02, -128),
        weight_scale=Range(0.001, 0.01), act_min=-128, act_max=127, saturated_biases=0,
    )  # fmt: skip


def _totals(layers: list[LayerEntry]) -> Totals:
    return Totals.of(layers)


def result(mismatches: int = 0, **changes) -> HilResult:
    head, exit_layer = layer(), layer("exits.0.0", 40, 10, 10)
    base = HilResult(
        board="qemu-mps2-an386",
        qemu_machine="mps2-an386",
        cpu="cortex-m4",
        checkpoint="m.pt",
        model_hash="ab" * 32,
        data="test",
        exit_threshold=0.9,
        samples=100,
        answered=100,
        lost=0,
        unfinished=0,
        errors=0,
        accuracy=0.95,
        float_accuracy=0.951,
        float_final_accuracy=0.95,
        reference_accuracy=0.95,
        exit_rate=0.6,
        parity_mismatches=mismatches,
        parity_examples=[ParityExample(i, "intermediate bytes differ") for i in range(min(mismatches, 10))],
        bytes_up_per_sample=30.0,
        bytes_down_per_sample=250.0,
        bytes_per_offload=66.0,
        bytes_per_local_result=18.0,
        device_instructions_mean=9000.0,
        device_instructions_local_mean=9000.0,
        device_instructions_offload_mean=9000.0,
        instruction_unit="instructions",
        layer_instructions=None,
        devices=1,
        samples_per_second=100.0,
        session_seconds=1.0,
        link_seconds_per_sample_at_115200=0.025,
        samples_per_second_at_115200=40.0,
        link=LinkCounters(101, 101, 101, 25000, 3000, 0, 0, 0),
        export_seconds=0.5,
        build_seconds=0.5,
        flash_bytes=7000,
        ram_bytes=3000,
        budget=Budget(flash_bytes=16384, ram_bytes=4096),
        export=ExportSummary(
            layers=HeadLayers(head=[head]),
            exits=[ExitEntry("exits.0", 1, 29491, [exit_layer])],
            totals=TotalsByPart(_totals([head]), _totals([exit_layer]), _totals([head, exit_layer])),
            peak_ram_bytes=2521,
        ),
        components={"model": ComponentSize(4000, 800, 3000), "app": ComponentSize(3000, 2200, 300)},
        workdir=None,
        wall_seconds=2.0,
        tradeoff=[TradeoffRow(t, 1 - t / 2, t / 2, 0.9 + t / 20, 20 + 40 * t) for t in (0.5, 0.7, 0.9)],
        link_compression=LinkCompression(
            config=LinkSettings(0, 0, 8, 0, 0, 0.02, "8b"),
            offloads=40,
            tensor_bytes_per_offload=33.0,
            payload_bytes_per_offload=49.0,
            wire_bytes_per_offload_predicted=59.0,
            wire_bytes_per_offload_measured=59.0,
            encodings_used={"dense": 10, "bitmap": 30, "index-value": 0, "zero-runs": 0},
            float32_tensor_bytes=160,
            int8_tensor_bytes=40,
            compression_vs_float32=160 / 33,
            compression_vs_int8=40 / 33,
            wire_compression_vs_float32=186 / 59,
            wire_compression_vs_int8=66 / 59,
        ),
        quantization=quantization(),
        feed=FeedSummary("replay", "lean", 0, "device totals", 1, 1, 0, 0, 0),
    )
    return dataclasses.replace(base, **changes)


def quantization(loss_points: float = 0.04) -> QuantizationSummary:
    return QuantizationSummary(1 / 255, -128, "calibration range [0, 1]", loss_points, 1.0, 0.998, 500)


def fault_counters() -> FaultLinkCounters:
    return FaultLinkCounters(
        frames_rejected_by_host=5,
        rounds_failed=0,
        rehellos=1,
        resets_detected=0,
        protocol_errors=0,
        gave_up=0,
        fragment_transfers=3,
        fragment_parts_sent=20,
        fragment_parts_resent=4,
        fragment_commits_sent=6,
        fragment_statuses=2,
        fragment_check_failures=0,
        fragment_commit_timeouts=1,
        fragment_late_answers=0,
        fragment_switches=1,
        device_frames_dropped=7,
        host_dropped={"crc": 3, "cobs": 2},
        injected={"down": {"frames": 120, "drop": 9}, "up": {"frames": 110, "drop": 2}},
        proxy_reconnects=0,
        device_restarts=0,
    )


def fault_result() -> HilResult:
    plain = result()
    return dataclasses.replace(
        plain,
        link=dataclasses.replace(plain.link, faults=fault_counters()),
        faults=FaultSession("drop=0.01", 7, 1),
    )
