"""Render the C library from a quantised, kernel-planned and memory-planned model.

The generated files hold data only: weights and constants (``mcuflow_weights.c``), each layer's
``mcuflow_fc_t`` and the call sequence into the static kernel library (``mcuflow_model.c``), and the
public header. The kernels themselves are ``firmware/kernels``, copied into the export as ``kernels/``.
Every number and identifier is computed here or by the passes; templates only print.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from mcuflow.codec.compress import LinkConfig
from mcuflow.codegen.names import c_comment, c_identifier
from mcuflow.ir.graph import Shape
from mcuflow.ir.kernel import KernelPlan
from mcuflow.ir.memory import MemoryPlan
from mcuflow.ir.quantized import QLinear, QModel
from mcuflow.version import __version__

ARTIFACTS = {
    "mcuflow_model.h.j2": "mcuflow_model.h",
    "mcuflow_internal.h.j2": "mcuflow_internal.h",
    "mcuflow_weights.c.j2": "mcuflow_weights.c",
    "mcuflow_model.c.j2": "mcuflow_model.c",
}

# Build files, so an export drops into someone else's firmware as a library.
PACKAGING = {
    "CMakeLists.txt.j2": "CMakeLists.txt",
    "library.json.j2": "library.json",
}

KERNELS_DIR = "kernels"  # where an export keeps its copy of the kernel library


def templates_dir() -> Path:
    from mcuflow.paths import templates_dir as where

    return where()


def c_ints(values, per_line: int = 16, indent: str = "    ") -> str:
    """Comma-separated integer literals, wrapped. int32 minimum never occurs (biases are bounded)."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join(indent + line for line in lines)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["c_ints"] = c_ints
    return env


def float_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


@dataclass(frozen=True)
class CLayer:
    """One layer as the templates print it: its sanitised C names, its quantised form and its kernel."""

    ident: str  # prefix of its arrays; ``<ident>`` is its mcuflow_fc_t, ``<ident>_run`` its entry point
    comment: str
    q: QLinear
    k: KernelPlan


@dataclass(frozen=True)
class CExit:
    ident: str  # its mcuflow_exit_t; ``<ident>_lut`` its table
    comment: str
    lut: np.ndarray  # the device's table: cut after the first 2^k - 1 entries past which all are 0
    threshold_q15: int


def device_lut(lut: np.ndarray) -> np.ndarray:
    """An exit's table as the device keeps it: the shortest 2^k entries (k = 1..8) whose last entry and
    everything after it are 0, so the kernel clamps a larger gap to the last index (one USAT) and reads 0,
    as it would from the whole table. A table that never reaches 0 stays whole."""
    lut = np.asarray(lut)
    for k in range(1, 9):
        if not lut[(1 << k) - 1 :].any():
            return lut[: 1 << k]
    return lut


@dataclass(frozen=True)
class CStep:
    """One line of ``mcuflow_head_run``."""

    kind: str  # "pad" | "linear" | "exit"
    src_offset: int | None  # arena offset, None: the caller's input
    dst_offset: int | None
    layer: CLayer | None = None
    exit: CExit | None = None
    exit_index: int = -1


@dataclass(frozen=True)
class LibraryContext:
    version: str
    model_name: str
    model_hash: str
    hash_bytes: list[int]
    source: str
    per_channel: bool
    input_len: int
    padded_len: int
    intermediate_len: int
    num_classes: int
    input_zp: int
    input_scale_bits: int
    input_scale_text: str  # the float32 scale as a C literal's digits
    input_source: str
    raw_to_input: str  # "" when the export does not know the training data's normalisation
    intermediate_zp: int
    intermediate_scale_bits: int
    plan: MemoryPlan
    layers: list[CLayer]  # head, then exits, then benchmark-only layers: mcuflow_layer_table's order
    fc_layers: list[CLayer]  # the fully connected ones (mcuflow_fc_t)
    conv_layers: list[CLayer]  # conv and pool layers (mcuflow_conv_t, mcuflow_pool_t)
    exits: list[CExit]
    steps: list[CStep]
    max_layer_in: int
    max_layer_out: int
    feature_maps: bool = False  # a convolutional model: its header gives the input and offloaded shapes
    input_shape: tuple[int, int, int] = (1, 1, 0)
    intermediate_shape: tuple[int, int, int] = (1, 1, 0)


def build_context(model: QModel, extra_layers: tuple[QLinear, ...] = ()) -> LibraryContext:
    """The template context. ``extra_layers`` (with kernels planned) get weights, an entry point and a
    layer-table entry but no step in ``mcuflow_head_run``: benchmarks time them through the table."""
    plan = model.plan
    assert plan is not None, "run plan_memory before codegen"
    if len(model.model_hash) != 64 or any(ch not in "0123456789abcdef" for ch in model.model_hash):
        raise ValueError(f"model hash {model.model_hash!r} is not 64 lowercase hex digits")

    def c_layer(layer: QLinear, prefix: str) -> CLayer:
        assert layer.kernel is not None, "run plan_kernels before codegen"
        return CLayer(c_identifier(layer.name, prefix=prefix), c_comment(layer.name), layer, layer.kernel)

    by_id: dict[int, CLayer] = {}
    layers = []
    named = [(layer, f"mcuflow_l{i}_") for i, layer in enumerate(model.head)]
    named += [(layer, f"mcuflow_x{e}_{j}_") for e, ex in enumerate(model.exits) for j, layer in enumerate(ex.layers)]
    named += [(layer, f"mcuflow_b{j}_") for j, layer in enumerate(extra_layers)]
    for layer, prefix in named:
        by_id[id(layer)] = c_layer(layer, prefix)
        layers.append(by_id[id(layer)])
    exits = [
        CExit(
            c_identifier(ex.name, prefix=f"mcuflow_exit{e}_"), c_comment(ex.name), device_lut(ex.lut), ex.threshold_q15
        )
        for e, ex in enumerate(model.exits)
    ]
    steps = [
        CStep(
            s.kind,
            s.src_offset,
            s.dst_offset,
            layer=by_id[id(s.layer)] if s.layer is not None else None,
            exit=exits[s.exit_index] if s.kind == "exit" else None,
            exit_index=s.exit_index,
        )
        for s in plan.steps
    ]
    return LibraryContext(
        version=__version__,
        model_name=c_comment(model.name),
        model_hash=model.model_hash,
        hash_bytes=list(bytes.fromhex(model.model_hash)),
        source=c_comment(model.source),
        per_channel=model.per_channel,
        input_len=model.input_len,
        padded_len=model.padded_len,
        intermediate_len=model.intermediate_len,
        num_classes=model.num_classes,
        input_zp=model.input_zp,
        input_scale_bits=float_bits(model.input_scale),
        input_scale_text=f"{np.float32(model.input_scale):.9g}",
        input_source=c_comment(model.input_source),
        raw_to_input=c_comment(model.raw_to_input),
        intermediate_zp=model.intermediate_zp,
        intermediate_scale_bits=float_bits(model.intermediate_scale),
        plan=plan,
        layers=layers,
        fc_layers=[cl for cl in layers if cl.q.kind == "linear"],
        conv_layers=[cl for cl in layers if cl.q.kind != "linear"],
        exits=exits,
        steps=steps,
        max_layer_in=max(cl.q.n_in for cl in layers),
        max_layer_out=max(cl.q.n_out for cl in layers),
        **_shapes(model),
    )


def _shapes(model: QModel) -> dict:
    """The feature-map shapes of a convolutional model (none for an MLP: its header stays as it was)."""
    ins = model.input_shape or Shape(1, 1, model.padded_len)
    mid = model.intermediate_shape
    if ins.h * ins.w == 1 and mid.h * mid.w == 1 and not any(cl.kind != "linear" for cl in model.all_layers()):
        return {}
    if ins.size != model.input_len:
        raise ValueError(f"input shape {ins} does not hold the {model.input_len} inputs")
    return {"feature_maps": True, "input_shape": (ins.h, ins.w, ins.c), "intermediate_shape": (mid.h, mid.w, mid.c)}


def kernel_files() -> dict[str, str]:
    """The kernel library's headers and README, by their path inside an export (``kernels/...``)."""
    from mcuflow.paths import firmware_dir

    root = firmware_dir() / "kernels"
    files = [*sorted(root.glob("*.h")), *sorted(root.glob("reference/*.h")), *sorted(root.glob("dsp/*.h"))]
    files.append(root / "README.md")
    return {f"{KERNELS_DIR}/{p.relative_to(root).as_posix()}": p.read_text() for p in files}


def render_library(model: QModel, extra_layers: tuple[QLinear, ...] = ()) -> dict[str, str]:
    """Path inside the export -> text, for everything the library compiles from: the generated files
    and the copy of the kernel library."""
    env = environment()
    ctx = build_context(model, tuple(extra_layers))
    files = {out: env.get_template(tpl).render(c=ctx) for tpl, out in ARTIFACTS.items()}
    return {**files, **kernel_files()}


def render_packaging(model: QModel) -> dict[str, str]:
    """File name -> text of the CMake and PlatformIO files that make the export a library."""
    env = environment()
    ctx = build_context(model)
    return {out: env.get_template(tpl).render(c=ctx) for tpl, out in PACKAGING.items()}


def render_link_config(cfg: LinkConfig) -> str:
    """``mcuflow_link_config.h``: the OFFLOAD compression settings the firmware's serve loop applies."""
    return (
        environment()
        .get_template("mcuflow_link_config.h.j2")
        .render(version=__version__, label=cfg.label(), identity=int(cfg.is_identity), **cfg.as_dict())
    )
