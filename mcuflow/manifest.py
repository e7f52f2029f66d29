"""An export directory's contract: ``export.json`` as one typed :class:`ExportManifest`, written and read
here only, with its format version checked; and ``quantized.npz`` read back into the IR.

Everything downstream of the compiler (build, flash, the tail runner, HIL sessions, the report) reads an
export through this module and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass, field
from pathlib import Path

import numpy as np

from mcuflow import atomic, jsonshape
from mcuflow.codec.compress import LinkConfig, link_scale
from mcuflow.errors import ConfigError
from mcuflow.ir.graph import Shape
from mcuflow.ir.qconv import QConv2d, QPool2d
from mcuflow.ir.quantized import QExit, QLinear, QModel
from mcuflow.npz import read_npz
from mcuflow.reference.agreement import QuantCheck
from mcuflow.sparsity.patterns import StructuredParams

FORMAT = "mcuflow-export"
FORMAT_VERSION = (
    3  # 2: the static kernel library, per-exit thresholds, every static buffer in `ram`; 3: conv layers, shapes
)
MANIFEST = "export.json"
WEIGHTS = "quantized.npz"
SCHEME = "int8 symmetric weights, asymmetric int8 activations, int32 bias, Q31 multiplier + shift"


@dataclass(frozen=True)
class QParams:
    scale: float
    zero_point: int


@dataclass(frozen=True)
class Range:
    min: float
    max: float


@dataclass(frozen=True)
class ConvEntry:
    """A conv or pool layer's geometry (feature maps ``[h, w, c]``, HWC-flattened)."""

    op: str  # "conv" | "maxpool" | "avgpool"
    in_shape: list[int]
    out_shape: list[int]
    kernel: list[int]
    stride: list[int]
    padding: list[int]  # top, left, bottom, right
    p: int = 1  # the closed form of the channels (mcuflow.ir.qconv)
    s: int = 0


@dataclass(frozen=True)
class LayerEntry:
    """One compiled layer: shape, pattern, storage, kernel, byte costs and quantisation."""

    name: str
    n_in: int
    n_out: int
    degree: int
    pattern: str
    structured: StructuredParams | None
    format: str
    kernel: str
    nnz: int
    stored_values: int
    weight_bytes: int
    index_bytes: int
    index_type: str | None
    row_ptr_type: str | None
    bias_bytes: int
    requant_bytes: int
    macs: int
    relu: bool
    input: QParams
    output: QParams
    weight_scale: Range
    act_min: int
    act_max: int
    saturated_biases: int
    conv: ConvEntry | None = None  # conv and pool layers

    @property
    def constant_bytes(self) -> int:
        """Flash for the layer's constants: weights, indices, biases, multipliers and shifts."""
        return self.weight_bytes + self.index_bytes + self.bias_bytes + self.requant_bytes


@dataclass(frozen=True)
class HeadLayers:
    head: list[LayerEntry]


@dataclass(frozen=True)
class ExitEntry:
    name: str
    at: int  # head layers before it
    threshold_q15: int  # its own threshold, as the C code has it
    layers: list[LayerEntry]


@dataclass(frozen=True)
class Totals:
    nnz: int
    weight_bytes: int
    index_bytes: int
    bias_bytes: int
    requant_bytes: int
    macs: int

    @classmethod
    def of(cls, layers: list[LayerEntry]) -> Totals:
        return cls(*(sum(getattr(e, k) for e in layers) for k in ("nnz", "weight_bytes", "index_bytes",
                                                                    "bias_bytes", "requant_bytes", "macs")))  # fmt: skip


@dataclass(frozen=True)
class TotalsByPart:
    head: Totals
    exits: Totals
    all: Totals


@dataclass(frozen=True)
class RamUse:
    """Every static buffer of the generated library; ``static_bytes`` is what the build's map measures."""

    arena_bytes: int
    scratch_bytes: int
    state_bytes: int
    static_bytes: int


@dataclass(frozen=True)
class RawToInput:
    """How raw data (pixels, sensor counts) became the model's inputs: ``x = (raw - shift) / divisor``."""

    shift: float
    divisor: float
    rule: str  # "declared", "minmax", "meanstd" or "none"


@dataclass(frozen=True)
class Quantization:
    """How real values become int8: a firmware converts a sensor value x with
    ``q = clamp(round(x / input.scale) + input.zero_point, -128, 127)``."""

    scheme: str
    per_channel: bool
    calibration_samples: int
    input: QParams
    input_source: str  # the calibration range, or what the user declared
    intermediate: QParams
    check: QuantCheck | None  # int8 against float on held-out inputs
    raw_to_input: RawToInput | None  # the training data's normalisation, when the export knows it


@dataclass(frozen=True)
class LinkEntry:
    """The OFFLOAD compression the device applies (:class:`~mcuflow.codec.compress.LinkConfig`)."""

    threshold: int
    topk: int
    bits: int
    shift: int
    code_zp: int
    scale: float  # the OFFLOAD header's scale
    label: str

    @property
    def config(self) -> LinkConfig:
        return LinkConfig(self.threshold, self.topk, self.bits, self.shift, self.code_zp)


@dataclass(frozen=True)
class TailFiles:
    onnx: str
    npz: str


@dataclass(frozen=True)
class ExportManifest:
    format: str
    format_version: int
    name: str
    source: str
    model_hash: str
    input_len: int
    padded_len: int
    intermediate_len: int
    num_classes: int
    exit_threshold: float  # what the user asked for; each exit's Q15 threshold is in `exits`
    peak_ram_bytes: int  # == ram.static_bytes
    ram: RamUse
    small_ram: bool
    arena_offsets: dict[str, int]
    quantization: Quantization
    layers: HeadLayers
    exits: list[ExitEntry]
    totals: TotalsByPart
    link: LinkEntry
    tail: TailFiles | None
    files: list[str]
    notes: list[str] = field(default_factory=list)
    export_seconds: float = 0.0
    input_shape: list[int] | None = None  # [h, w, c] of a feature-map input (HWC-flattened)
    intermediate_shape: list[int] | None = None  # [h, w, c] of the offloaded tensor ([1, 1, n]: a vector)

    @property
    def head(self) -> list[LayerEntry]:
        return self.layers.head

    def all_layers(self) -> list[LayerEntry]:
        return [*self.layers.head, *(x for e in self.exits for x in e.layers)]

    @property
    def constant_bytes(self) -> int:
        """Flash the model's constants take, besides code (exit tables: 512 B each)."""
        return sum(e.constant_bytes for e in self.all_layers()) + 512 * len(self.exits)

    def to_json(self) -> dict:
        return jsonshape.dump_fields(self)

    def write(self, directory: str | Path) -> Path:
        return atomic.write_text(Path(directory) / MANIFEST, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, directory: str | Path) -> ExportManifest:
        """The manifest of an export directory; one clear error for a missing, foreign, old or damaged one."""
        path = Path(directory) / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{directory} is not an mcuflow export (no {MANIFEST}); run `mcuflow export`") from None
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ConfigError(f"{path} is not readable JSON: {err}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{path} is not an mcuflow export manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{path} has format version {data.get('format_version')!r}; this mcuflow reads version "
                f"{FORMAT_VERSION}: export the model again"
            )
        try:
            return jsonshape.load_fields(cls, data, "")
        except jsonshape.ShapeError as err:
            raise ConfigError(f"{path} is not a complete export manifest: {err}") from None


def _conv_entry(layer) -> ConvEntry | None:
    if isinstance(layer, QConv2d):
        return ConvEntry("conv", list(astuple(layer.in_shape)), list(astuple(layer.out_shape)), list(layer.ksize),
                         list(layer.stride), list(layer.padding), layer.p, layer.s)  # fmt: skip
    if isinstance(layer, QPool2d):
        return ConvEntry(f"{layer.op}pool", list(astuple(layer.in_shape)), list(astuple(layer.out_shape)),
                         list(layer.ksize), list(layer.stride), [0, 0, 0, 0])  # fmt: skip
    return None


def layer_entry(layer: QLinear) -> LayerEntry:
    conv = _conv_entry(layer)
    if conv is not None:
        return _conv_layer_entry(layer, conv)
    pw, k = layer.packed, layer.kernel
    assert pw is not None and k is not None, "run choose_formats and plan_kernels first"
    return LayerEntry(
        name=layer.name,
        n_in=layer.n_in,
        n_out=layer.n_out,
        degree=layer.degree,
        pattern=layer.pattern,
        structured=layer.params if isinstance(layer.params, StructuredParams) else None,
        format=pw.format,
        kernel=k.function,
        nnz=pw.nnz,
        stored_values=int(pw.values.size),
        weight_bytes=pw.weight_bytes,
        index_bytes=pw.index_bytes,
        index_type=pw.col_ctype,
        row_ptr_type=pw.row_ctype,
        bias_bytes=4 * layer.n_out,
        requant_bytes=5 * layer.n_out,
        macs=layer.nnz,
        relu=layer.relu,
        input=QParams(layer.in_scale, layer.in_zp),
        output=QParams(layer.out_scale, layer.out_zp),
        weight_scale=Range(float(layer.w_scale.min()), float(layer.w_scale.max())),
        act_min=layer.act_min,
        act_max=layer.act_max,
        saturated_biases=layer.saturated_biases,
    )


def _conv_layer_entry(layer, conv: ConvEntry) -> LayerEntry:
    pw, k = layer.packed, layer.kernel
    assert pw is not None and k is not None, "run plan_kernels first"
    pool = isinstance(layer, QPool2d)
    c_out = layer.out_shape.c
    return LayerEntry(
        name=layer.name,
        n_in=layer.n_in,
        n_out=layer.n_out,
        degree=layer.degree,
        pattern="pool" if pool else layer.pattern,
        structured=None if pool or not isinstance(layer.params, StructuredParams) else layer.params,
        format=pw.format,
        kernel=k.function,
        nnz=pw.nnz,
        stored_values=int(pw.values.size),
        weight_bytes=pw.weight_bytes,
        index_bytes=0,
        index_type=None,
        row_ptr_type=None,
        bias_bytes=0 if pool else 4 * c_out,
        requant_bytes=0 if pool else 5 * c_out,
        macs=layer.macs,
        relu=layer.relu,
        input=QParams(layer.in_scale, layer.in_zp),
        output=QParams(layer.out_scale, layer.out_zp),
        weight_scale=Range(1.0, 1.0) if pool else Range(float(layer.w_scale.min()), float(layer.w_scale.max())),
        act_min=layer.act_min,
        act_max=layer.act_max,
        saturated_biases=0 if pool else layer.saturated_biases,
        conv=conv,
    )


def manifest_of(
    q: QModel,
    link: LinkConfig,
    *,
    tail: TailFiles | None,
    files: list[str],
    notes: list[str],
    check: QuantCheck | None = None,
    raw: RawToInput | None = None,
    seconds: float = 0.0,
) -> ExportManifest:
    """The manifest of a compiled model (after every pass)."""
    plan = q.plan
    assert plan is not None, "run plan_memory first"
    head = [layer_entry(layer) for layer in q.head]
    exits = [ExitEntry(e.name, e.at, e.threshold_q15, [layer_entry(x) for x in e.layers]) for e in q.exits]
    exit_layers = [x for e in exits for x in e.layers]
    return ExportManifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        name=q.name,
        source=q.source,
        model_hash=q.model_hash,
        input_len=q.input_len,
        padded_len=q.padded_len,
        intermediate_len=q.intermediate_len,
        num_classes=q.num_classes,
        exit_threshold=q.exit_threshold,
        peak_ram_bytes=plan.static_ram_bytes,
        ram=RamUse(plan.arena_bytes, plan.scratch_bytes, plan.state_bytes, plan.static_ram_bytes),
        small_ram=q.small_ram,
        arena_offsets=dict(plan.offsets),
        quantization=Quantization(
            SCHEME,
            q.per_channel,
            q.calibration_samples,
            QParams(q.input_scale, q.input_zp),
            q.input_source,
            QParams(q.intermediate_scale, q.intermediate_zp),
            check,
            raw,
        ),
        layers=HeadLayers(head),
        exits=exits,
        totals=TotalsByPart(Totals.of(head), Totals.of(exit_layers), Totals.of(head + exit_layers)),
        link=LinkEntry(**link.as_dict(), scale=link_scale(q.intermediate_scale, link), label=link.label()),
        tail=tail,
        files=sorted(files),
        notes=list(notes),
        export_seconds=round(seconds, 3),
        input_shape=list(astuple(q.input_shape)) if q.input_shape is not None else None,
        intermediate_shape=list(astuple(q.intermediate_shape)),
    )


# ---------------------------------------------------------------- quantized.npz


def weight_arrays(q: QModel) -> dict[str, np.ndarray]:
    """``quantized.npz``: every layer's integer arrays, by position (``head{i}``, ``exit{e}.{j}``)."""
    arrays: dict[str, np.ndarray] = {}

    def put(key: str, layer: QLinear) -> None:
        if isinstance(layer, QPool2d):
            return  # all of a pool is in its manifest entry
        for attr in ("weight", "channels" if isinstance(layer, QConv2d) else "columns", "bias", "mult", "rshift",
                     "w_scale"):  # fmt: skip
            arrays[f"{key}.{attr}"] = getattr(layer, attr)

    for i, layer in enumerate(q.head):
        put(f"head{i}", layer)
    for e, ex in enumerate(q.exits):
        for j, layer in enumerate(ex.layers):
            put(f"exit{e}.{j}", layer)
        arrays[f"exit{e}.lut"] = ex.lut
    return arrays


def _conv_from(z: dict[str, np.ndarray], key: str, m: LayerEntry):
    c = m.conv
    assert c is not None
    ins, outs = Shape(*c.in_shape), Shape(*c.out_shape)
    if c.op in ("maxpool", "avgpool"):
        return QPool2d(m.name, ins, outs, c.op[:3], tuple(c.kernel), tuple(c.stride), m.input.scale,
                       m.input.zero_point, m.act_min, m.relu)  # fmt: skip
    if c.op != "conv":
        raise ConfigError(f"layer {m.name}: unknown conv operation {c.op!r}")
    return QConv2d(
        m.name, ins, outs, tuple(c.kernel), tuple(c.stride), tuple(c.padding), z[f"{key}.weight"],
        z[f"{key}.channels"].astype(np.int64), z[f"{key}.bias"], z[f"{key}.mult"], z[f"{key}.rshift"],
        m.input.scale, m.input.zero_point, z[f"{key}.w_scale"], m.output.scale, m.output.zero_point,
        m.act_min, m.act_max, m.relu, m.pattern, c.p, c.s, params=m.structured,
    )  # fmt: skip


def _layer_from(z: dict[str, np.ndarray], key: str, m: LayerEntry) -> QLinear:
    if m.conv is not None:
        return _conv_from(z, key, m)
    return QLinear(
        name=m.name,
        n_in=m.n_in,
        n_out=m.n_out,
        weight=z[f"{key}.weight"],
        columns=z[f"{key}.columns"].astype(np.int64),
        bias=z[f"{key}.bias"],
        mult=z[f"{key}.mult"],
        rshift=z[f"{key}.rshift"],
        in_scale=m.input.scale,
        in_zp=m.input.zero_point,
        w_scale=z[f"{key}.w_scale"],
        out_scale=m.output.scale,
        out_zp=m.output.zero_point,
        act_min=m.act_min,
        act_max=m.act_max,
        relu=m.relu,
        pattern=m.pattern,
        params=m.structured,
    )


def load_model(directory: str | Path) -> QModel:
    """The quantised model of an export directory (``export.json`` + ``quantized.npz``)."""
    directory = Path(directory)
    meta = ExportManifest.read(directory)
    z = read_npz(directory / WEIGHTS, "the quantised weights")
    try:
        head = [_layer_from(z, f"head{i}", m) for i, m in enumerate(meta.head)]
        exits = [
            QExit(em.name, em.at, [_layer_from(z, f"exit{e}.{j}", m) for j, m in enumerate(em.layers)],
                  z[f"exit{e}.lut"], em.threshold_q15)
            for e, em in enumerate(meta.exits)
        ]  # fmt: skip
    except KeyError as err:
        raise ConfigError(f"{directory} is not a complete mcuflow export: {WEIGHTS} lacks {err}") from None
    q = meta.quantization
    return QModel(
        name=meta.name,
        model_hash=meta.model_hash,
        input_len=meta.input_len,
        padded_len=meta.padded_len,
        input_scale=q.input.scale,
        input_zp=q.input.zero_point,
        head=head,
        exits=exits,
        num_classes=meta.num_classes,
        exit_threshold=meta.exit_threshold,
        per_channel=q.per_channel,
        calibration_samples=q.calibration_samples,
        source=meta.source,
        small_ram=meta.small_ram,
        input_source=q.input_source,
        input_shape=Shape(*meta.input_shape) if meta.input_shape else None,
    )


def link_config(directory: str | Path) -> LinkConfig:
    """The link settings an export was built with."""
    return ExportManifest.read(directory).link.config
