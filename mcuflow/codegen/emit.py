"""Render the C library from a quantised, packed and planned model. Templates only print:
every number and identifier is computed here."""

from __future__ import annotations

import struct
from pathlib import Path

import jinja2
import numpy as np

from mcuflow import __version__
from mcuflow.codec.compress import LinkConfig
from mcuflow.codegen.kernels import device_values, int16_buffer_len, kernel_context
from mcuflow.codegen.names import c_comment, c_identifier
from mcuflow.ir.quantized import QLinear, QModel

ARTIFACTS = {
    "mcuflow_model.h.j2": "mcuflow_model.h",
    "mcuflow_internal.h.j2": "mcuflow_internal.h",
    "mcuflow_kernels.c.j2": "mcuflow_kernels.c",
    "mcuflow_weights.c.j2": "mcuflow_weights.c",
    "mcuflow_model.c.j2": "mcuflow_model.c",
}

# Build files, so an export drops into someone else's firmware as a library.
PACKAGING = {
    "CMakeLists.txt.j2": "CMakeLists.txt",
    "library.json.j2": "library.json",
}


def templates_dir() -> Path:
    from mcuflow.paths import templates_dir as where

    return where()


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def c_array(values, per_line: int = 16, indent: str = "    ") -> str:
    """Comma-separated integer literals, wrapped. int32 minimum never occurs (biases are bounded)."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join(indent + line for line in lines)


def float_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


def _layer_context(layer: QLinear, ident: str) -> dict:
    pw = layer.packed
    assert pw is not None, "run choose_formats before codegen"
    return {
        "ident": ident,
        "comment": c_comment(layer.name),
        "format": pw.format,
        "n_in": layer.n_in,
        "n_out": layer.n_out,
        "nnz": pw.nnz,
        "degree": pw.degree,
        "weight_bytes": pw.weight_bytes,
        "index_bytes": pw.index_bytes,
        "weights": c_array(device_values(pw)),
        "weights_len": pw.values.size,
        "cols": None if pw.col_idx is None else c_array(pw.col_idx),
        "cols_len": 0 if pw.col_idx is None else pw.col_idx.size,
        "col_type": pw.col_ctype,
        "row_ptr": None if pw.row_ptr is None else c_array(pw.row_ptr),
        "row_ptr_len": 0 if pw.row_ptr is None else pw.row_ptr.size,
        "row_type": pw.row_ctype,
        "bias": c_array(layer.bias),
        "mult": c_array(layer.mult),
        "rshift": c_array(layer.rshift),
        "step": pw.p,
        "pass_step": pw.pass_step,
        "out_zp": layer.out_zp,
        "act_min": layer.act_min,
        "act_max": layer.act_max,
        "kernel": pw.kernel,
        # one entry point per layer, its shape compiled in as constants
        "kernel_name": ident.removeprefix("mcuflow_"),
    }


def build_context(model: QModel, extra_layers: tuple[QLinear, ...] = ()) -> dict:
    """The template context. ``extra_layers`` get weights, kernels and layer-table entries but no step in
    ``mcuflow_head_run`` (benchmarks time them one by one through ``mcuflow_layer_table``)."""
    plan = model.plan
    assert plan is not None, "run plan_memory before codegen"
    idents: dict[int, str] = {}
    layers = []
    for i, layer in enumerate(model.head):
        idents[id(layer)] = c_identifier(layer.name, prefix=f"mcuflow_l{i}_")
        layers.append(_layer_context(layer, idents[id(layer)]))
    for e, ex in enumerate(model.exits):
        for j, layer in enumerate(ex.layers):
            idents[id(layer)] = c_identifier(layer.name, prefix=f"mcuflow_x{e}_{j}_")
            layers.append(_layer_context(layer, idents[id(layer)]))
    for j, layer in enumerate(extra_layers):
        idents[id(layer)] = c_identifier(layer.name, prefix=f"mcuflow_b{j}_")
        layers.append(_layer_context(layer, idents[id(layer)]))
    exits = [
        {
            "lut_ident": c_identifier(ex.name, prefix=f"mcuflow_lut{e}_"),
            "comment": c_comment(ex.name),
            "lut": c_array(ex.lut),
        }
        for e, ex in enumerate(model.exits)
    ]
    packed = [layer.packed for layer in [*model.head, *(x for ex in model.exits for x in ex.layers), *extra_layers]]
    kernels = [
        kernel_context(pw, lc["kernel_name"], lc["out_zp"], lc["act_min"], lc["act_max"])
        for pw, lc in zip(packed, layers, strict=True)
    ]
    gather_types = sorted({k["col_type"][:-2] for k in kernels if k["format"] in ("fixed", "csr")})
    scratch = int16_buffer_len(packed)
    steps = []
    for s in plan.steps:
        step = {"kind": s.kind, "exit_index": s.exit_index}
        if s.dst != "input":
            step["dst_off"] = plan.offsets[s.dst]
        if s.src != "input":
            step["src_off"] = plan.offsets[s.src]
        step["src_expr"] = "input" if s.src == "input" else f"arena + {plan.offsets[s.src]}"
        if s.layer is not None:
            ident = idents[id(s.layer)]
            step.update(kernel=ident.removeprefix("mcuflow_"), ident=ident, comment=c_comment(s.layer.name))
        if s.kind == "exit":
            step["lut_ident"] = exits[s.exit_index]["lut_ident"]
        steps.append(step)
    final = f"h{len(model.head) - 1}"
    logits_off = []
    for e, ex in enumerate(model.exits):
        logits_off.append(str(plan.offsets[f"e{e}_{len(ex.layers) - 1}"]))
    if len(model.model_hash) != 64 or any(ch not in "0123456789abcdef" for ch in model.model_hash):
        raise ValueError(f"model hash {model.model_hash!r} is not 64 lowercase hex digits")
    thresholds = {ex.threshold_q15 for ex in model.exits} or {32767}
    return {
        "version": __version__,
        "model_name": c_comment(model.name),
        "model_hash": model.model_hash,
        "source": c_comment(model.source),
        "per_channel": model.per_channel,
        "threshold_q15": thresholds.pop(),
        "input_len": model.input_len,
        "padded_len": model.padded_len,
        "intermediate_len": model.intermediate_len,
        "num_classes": model.num_classes,
        "num_exits": len(model.exits),
        "input_zp": model.input_zp,
        "input_scale_bits": float_bits(model.input_scale),
        "intermediate_zp": model.intermediate_zp,
        "intermediate_scale_bits": float_bits(model.intermediate_scale),
        "arena_bytes": plan.arena_bytes,
        "hash_bytes": c_array(list(bytes.fromhex(model.model_hash))),
        "layers": layers,
        "exits": exits,
        "kernels": kernels,
        "gather_types": gather_types,
        "int16_buffer": {"len": scratch} if scratch else None,  # the dense and index-free kernels' input buffer
        "max_layer_in": max(lc["n_in"] for lc in layers),
        "max_layer_out": max(lc["n_out"] for lc in layers),
        "steps": steps,
        "final_off": plan.offsets[final],
        "logits_offsets": ", ".join(logits_off),
    }


def render_library(model: QModel, extra_layers: tuple[QLinear, ...] = ()) -> dict[str, str]:
    """File name -> C source text for the whole library."""
    env = environment()
    ctx = build_context(model, tuple(extra_layers))
    return {out: env.get_template(tpl).render(**ctx) for tpl, out in ARTIFACTS.items()}


def render_packaging(model: QModel) -> dict[str, str]:
    """File name -> text of the CMake and PlatformIO files that make the export a library."""
    env = environment()
    ctx = build_context(model)
    return {out: env.get_template(tpl).render(**ctx) for tpl, out in PACKAGING.items()}


def render_link_config(cfg: LinkConfig) -> str:
    """``mcuflow_link_config.h``: the OFFLOAD compression settings the firmware's serve loop applies."""
    return (
        environment()
        .get_template("mcuflow_link_config.h.j2")
        .render(version=__version__, label=cfg.label(), **cfg.as_dict())
    )
