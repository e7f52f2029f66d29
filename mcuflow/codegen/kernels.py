"""Kernel planning for codegen: one C entry point per layer with its shape as constants, the device
weight order of each format, and the constants of the index-free kernel's input permutation."""

from __future__ import annotations

import numpy as np

from mcuflow.ir.packed import PackedWeights

# Offsets the permutation's unrolled copy uses must fit Thumb-2 immediates: 7 * |delta| bytes back
# (LDRSB, 8-bit negative offsets) and 14 * m bytes forward (STRH, 12-bit offsets).
_MAX_DELTA = 36
_MAX_M = 292


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


def kernel_context(pw: PackedWeights, name: str, out_zp: int, act_min: int, act_max: int) -> dict:
    """What the kernel template prints for one layer's entry point ``mcuflow_fc_<name>``."""
    ctx = {
        "out_zp": out_zp,
        "act_min": act_min,
        "act_max": act_max,
        "out": f"{out_zp}, {act_min}, {act_max}",
        "name": name,
        "format": pw.format,
        "n_in": pw.n_in,
        "n_out": pw.n_out,
        "degree": pw.degree,
        "col_type": pw.col_ctype,
        "row_type": pw.row_ctype,
    }
    if pw.format == "dense":
        ctx["w_aligned"] = int(pw.n_in % 4 == 0)
    if pw.format == "index_free":
        m, delta = permutation_plan(pw.n_in, pw.p)
        s = pw.s % pw.n_in if pw.n_in else 0
        # Rows start on a word boundary when the degree is a multiple of 4 (weights) and every window
        # start u is even (inputs, int16): even degree, width and pass shift.
        ctx.update(p=pw.p, s=s, pass_step=pw.pass_step, perm_m=m, perm_delta=delta, w_aligned=int(pw.degree % 4 == 0))
        ctx["x_aligned"] = int(pw.degree % 2 == 0 and pw.n_in % 2 == 0 and s % 2 == 0)
    return ctx


def int16_buffer_len(pws: list[PackedWeights]) -> int:
    """int16 entries of the kernels' shared input buffer: for index-free layers the permuted input and
    its repeated head (degree - 1); for dense ones the input widened to int16."""
    need = [pw.n_in + pw.degree for pw in pws if pw.format == "index_free"]
    need += [pw.n_in for pw in pws if pw.format == "dense"]
    return max(need, default=0)
