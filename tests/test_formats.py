"""Storage formats: packing, index types, byte sizes, automatic choice and forced formats."""

from __future__ import annotations

import numpy as np
import pytest

from mcuflow.errors import ConfigError
from mcuflow.ir.packed import smallest_unsigned
from mcuflow.ir.quantized import QLinear
from mcuflow.passes.formats import candidates, index_free_reason, pack
from mcuflow.sparsity.patterns import pattern_columns, structured_params


def qlinear(n_in, n_out, cols, pattern="explicit", params=None, seed=0):
    rng = np.random.default_rng(seed)
    d = cols.shape[1]
    return QLinear(
        name="l",
        n_in=n_in,
        n_out=n_out,
        weight=rng.integers(-127, 128, (n_out, d)).astype(np.int8),
        columns=cols.astype(np.int64),
        bias=np.zeros(n_out, np.int32),
        mult=np.full(n_out, 2**30, np.int32),
        rshift=np.full(n_out, 31, np.uint8),
        in_scale=1.0,
        in_zp=0,
        w_scale=np.ones(n_out),
        out_scale=1.0,
        out_zp=0,
        act_min=-128,
        act_max=127,
        relu=False,
        pattern=pattern,
        params=params,
    )


def structured(n_in, n_out, out_degree, seed=0):
    p = structured_params(n_in, n_out, out_degree, seed)
    return qlinear(n_in, n_out, pattern_columns("structured", n_in, n_out, out_degree, seed), "structured", p)


def unpack_dense(pw) -> np.ndarray:
    """Rebuild the dense matrix from any packed format (the index-free one from its closed form)."""
    w = np.zeros((pw.n_out, pw.n_in), np.int64)
    vals = pw.values.astype(np.int64)
    if pw.format == "dense":
        return vals.reshape(pw.n_out, pw.n_in)
    if pw.format == "csr":
        for r in range(pw.n_out):
            a, b = int(pw.row_ptr[r]), int(pw.row_ptr[r + 1])
            w[r, pw.col_idx[a:b].astype(np.int64)] = vals[a:b]
        return w
    if pw.format == "fixed":
        cols = pw.col_idx.astype(np.int64).reshape(pw.n_out, pw.degree)
    else:
        t = np.arange(pw.n_out * pw.degree)
        cols = ((((t + (t // pw.n_in) * pw.s) % pw.n_in) * pw.p) % pw.n_in).reshape(pw.n_out, pw.degree)
    np.put_along_axis(w, cols, vals.reshape(pw.n_out, pw.degree), axis=1)
    return w


SHAPES = [
    (7, 1, 1),  # one output, in-degree equal to the width
    (1, 5, 5),  # one input
    (12, 12, 12),  # degree equal to width (dense through the sparse path)
    (300, 30, 2),  # over 255 inputs: uint16 column indices
    (13, 26, 4),
    (800, 40, 2),  # the paper's first junction
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_format_round_trips_to_the_same_matrix(shape):
    layer = structured(*shape)
    expected = np.zeros((layer.n_out, layer.n_in), np.int64)
    np.put_along_axis(expected, layer.columns, layer.weight.astype(np.int64), axis=1)
    fmts = {pw.format for pw in candidates(layer)}
    assert fmts == {"dense", "csr", "fixed", "index_free"}
    for pw in candidates(layer):
        np.testing.assert_array_equal(unpack_dense(pw), expected, err_msg=pw.format)
        assert pw.nnz == layer.nnz


def test_byte_sizes_and_index_types():
    layer = structured(300, 30, 2)  # d_in = 20, nnz = 600
    sizes = {pw.format: pw for pw in candidates(layer)}
    assert sizes["dense"].weight_bytes == 300 * 30 and sizes["dense"].index_bytes == 0
    assert sizes["fixed"].col_ctype == "uint16_t" and sizes["fixed"].index_bytes == 2 * 600
    assert sizes["csr"].row_ctype == "uint16_t" and sizes["csr"].index_bytes == 2 * 600 + 2 * 31
    assert sizes["index_free"].total_bytes == 600
    small = {pw.format: pw for pw in candidates(structured(13, 26, 4))}
    assert small["fixed"].col_ctype == "uint8_t" and small["csr"].row_ctype == "uint8_t"


def test_index_types_over_65535():
    """Huge shapes with synthetic columns (kept tiny in nnz so the test stays fast)."""
    n_in = 70_000
    cols = np.array([[0, n_in - 1], [5, 65_536]])
    layer = qlinear(n_in, 2, cols)
    fixed = pack(layer, "fixed")
    assert fixed.col_ctype == "uint32_t" and fixed.index_bytes == 4 * 4
    assert fixed.col_idx.max() == n_in - 1
    # row pointers over 65,535: a single row of 70,000 entries
    wide = qlinear(n_in, 1, np.arange(n_in)[None, :])
    csr = pack(wide, "csr")
    assert csr.row_ctype == "uint32_t" and int(csr.row_ptr[-1]) == n_in
    assert csr.col_ctype == "uint32_t"
    assert smallest_unsigned(255) == np.uint8 and smallest_unsigned(256) == np.uint16
    assert smallest_unsigned(65_535) == np.uint16 and smallest_unsigned(65_536) == np.uint32


def test_index_free_needs_the_closed_form():
    rnd = qlinear(40, 40, pattern_columns("random", 40, 40, 10, 3), "random")
    assert "random" in index_free_reason(rnd)
    with pytest.raises(ConfigError, match="cannot use the index_free format"):
        pack(rnd, "index_free")
    tampered = structured(40, 40, 10)
    tampered.columns = tampered.columns[::-1].copy()
    assert "differ" in index_free_reason(tampered)
    with pytest.raises(ConfigError, match="unknown storage format"):
        pack(structured(40, 40, 10), "coo")


def test_auto_choice_is_the_smallest_and_index_free_for_the_paper_head():
    layer = structured(800, 40, 2)
    best = min(candidates(layer), key=lambda pw: pw.total_bytes)
    assert best.format == "index_free"
    assert best.total_bytes <= 1.15 * layer.nnz
    dense_layer = qlinear(40, 10, np.tile(np.arange(40), (10, 1)), "dense")
    assert min(candidates(dense_layer), key=lambda pw: pw.total_bytes).format == "dense"
