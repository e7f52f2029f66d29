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

    Dense and index-free rows are stored in groups of four as ``(w0, w2, w1, w3)`` (a partial last group
    as is), so that SXTB16 unpacks a loaded word into the pairs ``(w0, w1)`` and ``(w2, w3)`` that meet two
    int16 inputs loaded as one word. The gathering formats (csr, fixed) keep their natural order."""
    vals = np.asarray(pw.values, dtype=np.int8)
    row = {"index_free": pw.degree, "dense": pw.n_in}.get(pw.format, 0)
    if row < 4:
        return vals
    rows = vals.reshape(pw.n_out, row).copy()
    full = (row // 4) * 4
    groups = rows[:, :full].reshape(pw.n_out, -1, 4)
    rows[:, :full] = groups[:, :, [0, 2, 1, 3]].reshape(pw.n_out, full)
    return rows.reshape(-1)


def plan_kernel(pw: PackedWeights, small_ram: bool = False) -> KernelPlan:
    """The kernel call of one packed layer; ``small_ram``: no scratch buffer (slower kernels)."""
    degree = pw.n_in if pw.format == "dense" else pw.degree
    common = {"function": FUNCTIONS[pw.format], "weights": device_values(pw), "degree": degree}
    if pw.format == "dense":
        return KernelPlan(
            **common,
            w_aligned=pw.n_in % 4 == 0,
            unroll=pw.n_in > DENSE_UNROLL_MIN,
            scratch_entries=0 if small_ram else pw.n_in,  # the DSP variant's widened input
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
    return KernelPlan(
        **common,
        p=pw.p,
        s=s,
        pass_step=pw.pass_step,
        perm_m=m,
        perm_delta=delta,
        # Rows start on a word boundary when the degree is a multiple of 4 (weights) and every window
        # start u is even (int16 inputs): even degree, width and pass shift.
        w_aligned=pw.degree % 4 == 0,
        x_aligned=pw.degree % 2 == 0 and pw.n_in % 2 == 0 and s % 2 == 0,
        unroll=True,
        scratch_entries=0 if small_ram else pw.n_in + pw.degree,  # the permuted input and its repeated head
    )


def plan_kernels(model: QModel, small_ram: bool = False, extra_layers: tuple[QLinear, ...] = ()) -> QModel:
    """Set ``layer.kernel`` on every layer of the model (and on ``extra_layers``, which benchmarks run)."""
    model.small_ram = small_ram
    for layer in (*model.all_layers(), *extra_layers):
        if isinstance(layer, QConv2d | QPool2d):
            plan_conv(layer)  # conv layers always use the scratch: it holds their patch
            continue
        assert layer.packed is not None, "run choose_formats before plan_kernels"
        layer.kernel = plan_kernel(layer.packed, small_ram)
    return model
