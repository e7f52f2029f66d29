"""Kernel pass: for every packed layer, the library kernel that runs it and the constants it needs.

After ``choose_formats``: each layer's :class:`KernelPlan` names the function of ``firmware/kernels`` that
runs it, holds its weights in the order that kernel reads them, and the kernel's compile-time constants
(the index-free permutation plan, alignment facts, unrolling) and scratch need. Codegen only prints these.
"""

from __future__ import annotations

import numpy as np

from mcuflow.ir.kernel import KernelPlan
from mcuflow.ir.packed import PackedWeights
from mcuflow.ir.qconv import QConv2d, QPool2d
from mcuflow.ir.quantized import QLinear, QModel
from mcuflow.passes.kernels_conv import plan_conv

FUNCTIONS = {
    "dense": "mcuflow_fc_dense",
    "fixed": "mcuflow_fc_fixed",
    "csr": "mcuflow_fc_csr",
    "index_free": "mcuflow_fc_index_free",
}

# Offsets the permutation's unrolled copy uses must fit Thumb-2 immediates: 7 * |delta| bytes back
# (LDRSB, 8-bit negative offsets) and 14 * m bytes forward (STRH, 12-bit offsets).
_MAX_DELTA = 36
_MAX_M = 292
# Dense rows longer than this unroll their block loop; shorter ones keep it (flash).
DENSE_UNROLL_MIN = 64


def permutation_plan(n: int, p: int) -> tuple[int, int]:
    """``(m, delta)`` for building ``xp[u] = x[(u * p) mod n]`` in ``m`` residue classes of ``u``.

    Within a class the column steps by ``delta = (m * p) mod n`` (taken in ``(-n, n)``) and wraps around
    ``n`` at most once; the plan minimises the estimated setup cost of the classes and their wraps."""
    best: tuple[float, int, int] | None = None
    for m in range(1, min(n, _MAX_M) + 1):
        r = (m * p) % n
        count = -(-n // m)
        for delta in (r, r - n):
            if delta == 0 or abs(delta) > _MAX_DELTA or (count - 1) * abs(delta) >= n:
                continue  # (count - 1) * |delta| < n: a class wraps around n at most once
            # a class costs about 10 instructions of setup, a wrap (in about count * |delta| / n of them) 40
            cost = 10 * m + 40 * count * abs(delta) * m / n
            if best is None or cost < best[0]:
                best = (cost, m, delta)
    if best is None:  # n classes of one entry each: always valid
        return n, (n * p) % n or -1
    return best[1], best[2]


def device_values(pw: PackedWeights) -> np.ndarray:
    """The weights in the order the device kernel reads them.

    Dense rows are stored in groups of four as ``(w0, w2, w1, w3)`` (a partial last group as is), so that
    SXTB16 unpacks a loaded word into the pairs ``(w0, w1)`` and ``(w2, w3)`` that meet two int16 inputs
    loaded as one word. Index-free rows meet int8 inputs, unpacked the same way, so they keep the natural
    order, as do the gathering formats (csr, fixed)."""
    vals = np.asarray(pw.values, dtype=np.int8)
    row = pw.n_in if pw.format == "dense" else 0
    if row < 4:
        return vals
    rows = vals.reshape(pw.n_out, row).copy()
    full = (row // 4) * 4
    groups = rows[:, :full].reshape(pw.n_out, -1, 4)
    rows[:, :full] = groups[:, :, [0, 2, 1, 3]].reshape(pw.n_out, full)
    return rows.reshape(-1)


def straddles(n_in: int, n_out: int, degree: int) -> bool:
    """Whether some row of an index-free layer crosses a pass boundary (its edges t = r*degree .. r*degree +
    degree - 1 lie in two passes of n_in edges)."""
    return n_in > 0 and any((r * degree) // n_in != (r * degree + degree - 1) // n_in for r in range(n_out))


def window_runs(n_in: int, n_out: int, degree: int, s: int) -> tuple[tuple[int, int], ...]:
    """The rows of an index-free layer without straddling rows as runs of windows ``(rows, first window)``:
    within a run each window starts ``degree`` after the last; a run ends at a pass boundary (the next pass
    starts ``s`` further on) and where a window would start at or past ``n_in`` (it starts again from 0, the
    permuted input's head being repeated after its end). Rows stay in order. () when a row straddles."""
    if n_in <= 0 or degree <= 0 or straddles(n_in, n_out, degree):
        return ()
    runs: list[list[int]] = []
    start = None
    for r in range(n_out):
        t = r * degree
        u = (t + (t // n_in) * s) % n_in
        if start is not None and u == start + runs[-1][0] * degree:
            runs[-1][0] += 1
        else:
            runs.append([1, u])
            start = u
    return tuple((rows, u) for rows, u in runs)


def fold_padding(layer: QLinear, weights: np.ndarray, n_x: int) -> tuple[np.ndarray, np.ndarray]:
    """Index-free weights with the edges into padding columns (>= n_x) set to 0, and the biases that keep
    every accumulator as it was: a padding input is the input zero point, so each such edge added
    ``w * in_zp``, now in the bias. The device then never reads a padding column."""
    w = np.asarray(weights, dtype=np.int64).reshape(layer.n_out, layer.degree)
    pad = np.asarray(layer.columns) >= n_x
    bias = np.asarray(layer.bias, dtype=np.int64) + layer.in_zp * np.where(pad, w, 0).sum(axis=1)
    if np.abs(bias).max(initial=0) >= 2**31:
        raise ValueError(f"{layer.name}: folding the padding overflows a bias")  # cannot happen: |w * zp| < 2^15
    return np.where(pad, 0, w).astype(np.int8).reshape(-1), bias.astype(np.int32)


def plan_kernel(pw: PackedWeights, small_ram: bool = False, layer: QLinear | None = None, n_x: int = 0) -> KernelPlan:
    """The kernel call of one packed layer; ``small_ram``: no scratch buffer (slower kernels). ``n_x``: the
    layer reads a padded input of which only the first ``n_x`` elements are inputs (the head's first layer
    after a Pad); ``layer``, its quantised form, gives the columns and biases to fold the padding."""
    degree = pw.n_in if pw.format == "dense" else pw.degree
    common = {"function": FUNCTIONS[pw.format], "weights": device_values(pw), "degree": degree}
    if layer is not None and np.all(np.asarray(layer.rshift) >= 33):
        # the short requantisation (requantize.h) takes rshift - 33: one subtraction less per row
        common["shift_gt32"] = True
        common["rshift"] = (np.asarray(layer.rshift, dtype=np.int64) - 33).astype(np.uint8)
    if pw.format == "dense":
        return KernelPlan(
            **common,
            w_aligned=pw.n_in % 4 == 0,
            unroll=pw.n_in > DENSE_UNROLL_MIN,
            scratch_bytes=0 if small_ram else 2 * pw.n_in,  # the DSP variant's widened input, int16
        )
    if pw.format == "fixed":
        return KernelPlan(**common, col_bytes=pw.col_idx.dtype.itemsize)  # type: ignore[union-attr]
    if pw.format == "csr":
        return KernelPlan(
            **common,
            col_bytes=pw.col_idx.dtype.itemsize,  # type: ignore[union-attr]
            row_ptr_bytes=pw.row_ptr.dtype.itemsize,  # type: ignore[union-attr]
        )
    m, delta = permutation_plan(pw.n_in, pw.p)
    s = pw.s % pw.n_in if pw.n_in else 0
    if n_x and n_x < pw.n_in and layer is not None:
        common["weights"], common["bias"] = fold_padding(layer, common["weights"], n_x)
    else:
        n_x = 0
    return KernelPlan(
        **common,
        p=pw.p,
        s=s,
        pass_step=pw.pass_step,
        perm_m=m,
        perm_delta=delta,
        # Rows start on a word boundary when the degree is a multiple of 4 (weights) and every window
        # start u is too (int8 inputs): degree, width and pass shift multiples of 4.
        w_aligned=pw.degree % 4 == 0,
        x_aligned=pw.degree % 4 == 0 and pw.n_in % 4 == 0 and s % 4 == 0,
        unroll=True,
        scratch_bytes=0 if small_ram else pw.n_in + pw.degree - 1,  # the permuted input, its head repeated
        n_x=n_x,
        runs=window_runs(pw.n_in, pw.n_out, pw.degree, s),
    )


def plan_kernels(model: QModel, small_ram: bool = False, extra_layers: tuple[QLinear, ...] = ()) -> QModel:
    """Set ``layer.kernel`` on every layer of the model (and on ``extra_layers``, which benchmarks run)."""
    model.small_ram = small_ram
    for layer in (*model.all_layers(), *extra_layers):
        if isinstance(layer, QConv2d | QPool2d):
            plan_conv(layer)  # conv layers always use the scratch: it holds their patch
            continue
        assert layer.packed is not None, "run choose_formats before plan_kernels"
        # The head's first layer reads the padded input: an index-free one reads the input itself.
        n_x = model.input_len if model.head and layer is model.head[0] and model.padded_len != model.input_len else 0
        layer.kernel = plan_kernel(layer.packed, small_ram, layer, n_x)
    return model
