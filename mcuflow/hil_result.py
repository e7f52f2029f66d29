"""What one HIL session measured: :class:`HilResult`, and its JSON (``mcuflow hil --json``).

The JSON keeps the keys the session dict had (top level and nested), plus ``format_version``;
:func:`read_result` takes such a file back and refuses anything else with one :class:`ConfigError`
line. The summary, the HTML report, the CLI and the bench scripts read these fields, never the JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcuflow import jsonshape
from mcuflow.errors import ConfigError
from mcuflow.manifest import ExitEntry, ExportManifest, HeadLayers, LayerEntry, TotalsByPart

# 1: the session dict of earlier versions, with this key added. Bump on any change a reader must know.
FORMAT_VERSION = 3  # 2: the quantisation block; 3: the feed block (sensor replay, lean answers)


@dataclass(frozen=True)
class ParityExample:
    index: int  # the sample
    problem: str  # how the device's answer differs from the numpy reference


@dataclass(frozen=True)
class TradeoffRow:
    """What one exit threshold would have given on the session's samples (int8 reference + tail)."""

    threshold: float
    exit_rate: float
    offload_rate: float
    accuracy: float
    bytes_up_per_sample: float | None  # from the session's measured frame sizes; None without both kinds


@dataclass(frozen=True)
class Budget:
    flash_bytes: int
    ram_bytes: int


@dataclass(frozen=True)
class ComponentSize:
    """One part of the firmware (model, app, libc...), from the linker map."""

    flash: int
    ram: int
    rodata: int


@dataclass(frozen=True)
class LinkSettings:
    """The OFFLOAD compression the export was built with (``export.json``'s ``link``)."""

    threshold: int
    topk: int
    bits: int
    shift: int
    code_zp: int
    scale: float
    label: str


@dataclass(frozen=True)
class LinkCompression:
    """The link settings and what they gave: measured OFFLOAD bytes against the reference's
    prediction and the float32 / int8 dense baselines (docs/results-link.md). The per-offload
    figures are None in a session without offloads."""

    config: LinkSettings | None
    offloads: int
    tensor_bytes_per_offload: float | None
    payload_bytes_per_offload: float | None
    wire_bytes_per_offload_predicted: float | None
    wire_bytes_per_offload_measured: float | None
    encodings_used: dict[str, int]  # encoding name -> offloads that used it
    float32_tensor_bytes: int
    int8_tensor_bytes: int
    compression_vs_float32: float | None
    compression_vs_int8: float | None
    wire_compression_vs_float32: float | None
    wire_compression_vs_int8: float | None


@dataclass(frozen=True)
class FaultLinkCounters:
    """What a session through the fault-injecting proxy adds to the link counters (mcuflow.link.faults).

    In JSON these sit flat beside the base counters; the two families are spelled
    ``host_dropped_<reason>`` and ``faults_<direction>_<kind>`` there."""

    frames_rejected_by_host: int
    rounds_failed: int
    rehellos: int
    resets_detected: int
    protocol_errors: int
    gave_up: int
    fragment_transfers: int
    fragment_parts_sent: int
    fragment_parts_resent: int
    fragment_commits_sent: int
    fragment_statuses: int
    fragment_check_failures: int
    fragment_commit_timeouts: int
    fragment_late_answers: int
    fragment_switches: int
    device_frames_dropped: int  # the device's own count (summed over devices; -1 each where unreadable)
    host_dropped: dict[str, int]  # reason -> frames the host refused
    injected: dict[str, dict[str, int]]  # direction ("down", "up") -> fault kind -> count
    proxy_reconnects: int
    device_restarts: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in jsonshape.dump_fields(self).items():
            if name == "host_dropped":
                out |= {f"host_dropped_{reason}": n for reason, n in value.items()}
            elif name == "injected":
                out |= {f"faults_{d}_{kind}": n for d, counts in value.items() for kind, n in counts.items()}
            else:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, value: dict[str, Any], where: str) -> FaultLinkCounters:
        plain: dict[str, Any] = {"host_dropped": {}, "injected": {}}
        for key, n in value.items():
            if key.startswith("host_dropped_"):
                plain["host_dropped"][key.removeprefix("host_dropped_")] = n
            elif key.startswith("faults_") and "_" in key.removeprefix("faults_"):
                direction, kind = key.removeprefix("faults_").split("_", 1)
                plain["injected"].setdefault(direction, {})[kind] = n
            else:
                plain[key] = n
        return jsonshape.load_fields(cls, plain, where)


@dataclass(frozen=True)
class LinkCounters:
    """The host's link counters, summed over the session's devices (mcuflow.link.client.LinkStats)."""

    requests: int
    replies: int
    frames_sent: int  # host -> device, every resend, part and COMMIT copy included
    bytes_down: int
    bytes_up: int
    retries: int
    timeouts: int
    stale: int
    faults: FaultLinkCounters | None = None  # only through the fault-injecting proxy

    def to_json(self) -> dict[str, Any]:
        out = jsonshape.dump_fields(self)
        extra = out.pop("faults")
        return out if extra is None else out | extra

    @classmethod
    def from_json(cls, value: Any, where: str) -> LinkCounters:
        base = [name for name in cls.__dataclass_fields__ if name != "faults"]
        if not isinstance(value, dict):
            return jsonshape.load_fields(cls, value, where)  # raises: not an object
        rest = {k: v for k, v in value.items() if k not in base}
        counters = jsonshape.load_fields(cls, {k: v for k, v in value.items() if k in base}, where)
        if not rest:
            return counters
        return cls(**{name: getattr(counters, name) for name in base}, faults=FaultLinkCounters.from_json(rest, where))

    @classmethod
    def summed(cls, per_device: list[dict[str, Any]]) -> LinkCounters:
        """The integer counters of each device's link (as the link reports them), added up."""
        total: dict[str, int] = {}
        for counts in per_device:
            for key, n in counts.items():
                if isinstance(n, int) and not isinstance(n, bool):  # the per-reason ``dropped`` dict is not
                    total[key] = total.get(key, 0) + n
        try:
            return cls.from_json(total, "link")
        except jsonshape.ShapeError as err:  # a counter added to the link but not here: a bug, say which
            raise RuntimeError(f"the link reported counters HilResult cannot hold: {err}") from None


@dataclass(frozen=True)
class ExportSummary:
    """The model as exported: the manifest's layers, exits, totals and RAM (mcuflow.manifest)."""

    layers: HeadLayers
    exits: list[ExitEntry]
    totals: TotalsByPart
    peak_ram_bytes: int

    def all_layers(self) -> list[LayerEntry]:
        """Head layers, then each exit's, in the order the selftest profile counts them."""
        return [*self.layers.head, *(layer for ex in self.exits for layer in ex.layers)]

    @classmethod
    def of(cls, m: ExportManifest) -> ExportSummary:
        return cls(m.layers, m.exits, m.totals, m.peak_ram_bytes)


@dataclass(frozen=True)
class FaultSession:
    spec: str  # the --faults specification ("" for the proxy without faults)
    seed: int
    devices: int


@dataclass(frozen=True)
class QuantizationSummary:
    """What int8 costs on this session's samples, next to parity (which says only that C == reference)."""

    input_scale: float
    input_zero_point: int
    input_source: str  # the calibration range, or what the user declared
    loss_points: float  # float accuracy minus the int8 reference's, before link compression, in points
    bound_points: float
    export_agreement: float | None  # int8 vs float answers on export's held-out calibration inputs
    export_check_samples: int | None

    @property
    def passed(self) -> bool:
        return self.loss_points <= self.bound_points


@dataclass(frozen=True)
class FeedSummary:
    """Where the device's inputs came from, which answers it sent, and what replaying cost on the link."""

    feed: str  # "replay": read from the device's own memory, as a sensor's; "host": sent down the link
    frames: str  # "lean" or "full" answers (docs/protocol.md)
    period: int  # replay pacing in counter units between samples; 0: free-running
    instructions_from: str  # "answers" (each answer's count) or "device totals" (REPLAY_END)
    replay_runs: int  # REPLAY runs that ended with their REPLAY_END
    replay_requests: int  # REPLAY requests sent, resends included
    replay_asked_again: int  # samples asked for again after their answer was lost
    replay_rejected: int  # answers that passed their CRC but broke the protocol
    replay_stale: int  # answers for a sample not asked for, or answered already


@dataclass(frozen=True)
class HilResult:
    """One session's results; the field names are the JSON keys (see ``mcuflow hil --help``)."""

    board: str
    qemu_machine: str
    cpu: str
    checkpoint: str
    model_hash: str
    data: str  # where the samples came from
    exit_threshold: float
    samples: int
    answered: int
    lost: int
    unfinished: int  # offloads no host tail could finish (an ONNX head without --tail): counted as wrong
    errors: int  # samples the device refused
    accuracy: float | None  # end to end, device + host tail
    float_accuracy: float  # the float model at the same threshold
    float_final_accuracy: float
    reference_accuracy: float  # the numpy int8 reference + the same tail
    exit_rate: float | None
    parity_mismatches: int
    parity_examples: list[ParityExample]  # the first few
    bytes_up_per_sample: float | None
    bytes_down_per_sample: float | None
    bytes_per_offload: float | None
    bytes_per_local_result: float | None
    device_instructions_mean: float | None
    device_instructions_local_mean: float | None
    device_instructions_offload_mean: float | None
    instruction_unit: str
    layer_instructions: dict[str, float] | None  # layer name -> instructions per call (selftest firmware)
    devices: int
    samples_per_second: float | None
    session_seconds: float
    link_seconds_per_sample_at_115200: float | None
    samples_per_second_at_115200: float | None
    link: LinkCounters
    export_seconds: float
    build_seconds: float
    flash_bytes: int
    ram_bytes: int
    budget: Budget
    export: ExportSummary
    components: dict[str, ComponentSize]  # firmware part -> its sizes
    workdir: str | None  # None: the export and build were in a temporary directory, now gone
    wall_seconds: float
    tradeoff: list[TradeoffRow]
    link_compression: LinkCompression
    quantization: QuantizationSummary
    feed: FeedSummary
    faults: FaultSession | None = None  # set when the session went through the fault-injecting proxy

    @property
    def passed(self) -> bool:
        """Bit-exact, nothing lost or refused, and int8 within the bound of the float model."""
        return not (self.parity_mismatches or self.lost or self.errors) and self.quantization.passed

    def problems(self) -> list[str]:
        out = []
        if self.parity_mismatches or self.lost or self.errors:
            out.append(f"{self.parity_mismatches} parity mismatches, {self.lost} lost, {self.errors} refused samples")
        if not self.quantization.passed:
            q = self.quantization
            out.append(f"int8 loses {q.loss_points:.2f} accuracy points against float (bound {q.bound_points:g})")
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"format_version": FORMAT_VERSION, **jsonshape.dump_fields(self)}
        if self.faults is None:
            del out["faults"]  # as before: the key appears only in fault sessions
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "") -> HilResult:
        if not isinstance(value, dict):
            raise jsonshape.ShapeError(f"expected an object, got {jsonshape.kind_of(value)}")
        version = value.get("format_version")
        if version != FORMAT_VERSION:
            said = "no format_version" if version is None else f"format_version {version!r}"
            raise jsonshape.ShapeError(f"{said}, this mcuflow reads format_version {FORMAT_VERSION}")
        return jsonshape.load_fields(cls, value, where, ignore=("format_version",))


def write_result(result: HilResult, path: str | os.PathLike) -> Path:
    from mcuflow import atomic

    return atomic.write_text(path, json.dumps(result.to_json(), indent=2) + "\n")


def read_result(path: str | os.PathLike) -> HilResult:
    """A ``mcuflow hil --json`` file, or one :class:`ConfigError` saying why it is not one."""
    try:
        value = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    try:
        return HilResult.from_json(value)
    except jsonshape.ShapeError as err:
        raise ConfigError(f"{path} is not a `mcuflow hil --json` result: {err}") from None
