"""Storage-format pass: pack every layer's int8 weights, by default in its smallest format."""

from __future__ import annotations

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.ir.packed import FORMATS, PackedWeights, smallest_unsigned
from mcuflow.ir.quantized import QLinear, QModel
from mcuflow.sparsity.patterns import structured_columns

# On equal bytes, prefer the simpler kernel.
_PREFERENCE = ("index_free", "dense", "fixed", "csr")


def index_free_reason(layer: QLinear) -> str | None:
    """Why the layer cannot be index-free (None if it can)."""
    if layer.pattern != "structured" or layer.params is None:
        return f"its pattern is {layer.pattern!r}, not the closed-form structured one"
    p = layer.params
    if (p.n_in, p.n_out, p.d_in) != (layer.n_in, layer.n_out, layer.degree):
        return "its structured parameters do not match its shape"
    if not np.array_equal(structured_columns(p), layer.columns):
        return "its stored columns differ from the closed form its parameters give"
    return None


def pack(layer: QLinear, fmt: str) -> PackedWeights:
    n_in, n_out, d = layer.n_in, layer.n_out, layer.degree
    if fmt == "dense":
        dense = np.zeros((n_out, n_in), dtype=np.int8)
        np.put_along_axis(dense, layer.columns, layer.weight, axis=1)
        return PackedWeights("dense", n_in, n_out, d, dense.reshape(-1))
    if fmt == "fixed":
        cols = layer.columns.astype(smallest_unsigned(max(n_in - 1, 0)))
        return PackedWeights("fixed", n_in, n_out, d, layer.weight.reshape(-1).copy(), col_idx=cols.reshape(-1))
    if fmt == "csr":
        nnz = n_out * d
        row_ptr = (np.arange(n_out + 1, dtype=np.int64) * d).astype(smallest_unsigned(nnz))
        cols = layer.columns.astype(smallest_unsigned(max(n_in - 1, 0)))
        return PackedWeights(
            "csr", n_in, n_out, d, layer.weight.reshape(-1).copy(), col_idx=cols.reshape(-1), row_ptr=row_ptr
        )
    if fmt == "index_free":
        reason = index_free_reason(layer)
        if reason:
            raise ConfigError(f"{layer.name} cannot use the index_free format: {reason}")
        p = layer.params
        return PackedWeights("index_free", n_in, n_out, d, layer.weight.reshape(-1).copy(), p=p.p, s=p.s)
    raise ConfigError(f"unknown storage format {fmt!r}; choose one of {', '.join(FORMATS)}")


def candidates(layer: QLinear) -> list[PackedWeights]:
    fmts = [f for f in _PREFERENCE if f != "index_free" or index_free_reason(layer) is None]
    return [pack(layer, f) for f in fmts]


def choose_formats(model: QModel, force: str | None = None) -> QModel:
    """Pack every layer: ``force`` (one of FORMATS) for the head's layers, else the smallest.

    Exit branches are dense linear layers; a forced sparse format applies to them only where it is possible.
    """
    if force is not None and force not in FORMATS:
        raise ConfigError(f"unknown storage format {force!r}; choose one of {', '.join(FORMATS)} (or auto)")
    for layer in model.head:
        if layer.kind != "linear":  # packed by plan_kernels (passes.kernels_conv)
            continue
        if force:
            layer.packed = pack(layer, force)
        else:
            layer.packed = min(candidates(layer), key=lambda pw: pw.total_bytes)
    for e in model.exits:
        for layer in e.layers:
            if layer.kind != "linear":
                continue
            options = candidates(layer)
            forced = [pw for pw in options if pw.format == force]
            layer.packed = forced[0] if forced else min(options, key=lambda pw: pw.total_bytes)
    return model
