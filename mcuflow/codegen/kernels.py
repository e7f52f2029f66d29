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

    Within a class the column steps by ``delta = (m * p) mod n`` (taken in ``(-n, n)``), wrapping about
    ``|delta|`` times in all, so the copy costs about ``m + |delta|`` segments: the plan minimises that
    (weighting a class above a wrap, as a class costs a little more setup)."""
    best: tuple[float, int, int] | None = None
    for m in range(1, min(n, _MAX_M) + 1):
        r = (m * p) % n
        for delta in (r, r - n):
            if delta == 0 or abs(delta) > _MAX_DELTA:
                continue
            cost = 1.4 * m + abs(delta)
            if best is None or cost < best[0]:
                best = (cost, m, delta)
    if best is None:  # tiny or awkward widths: one class, the column steps by p (still correct, just slower)
        return 1, (p % n) or -1 if n > 1 else -1
    return best[1], best[2]


def device_values(pw: PackedWeights) -> np.ndarray:
    """The weights in the order the device kernel reads them.

    Index-free rows are stored in groups of four as ``(w0, w2, w1, w3)`` (a partial last group as is), so
    that SXTB16 unpacks a loaded word into the pairs ``(w0, w1)`` and ``(w2, w3)`` that meet two int16
    inputs loaded as one word. Other formats keep their natural order."""
    vals = np.asarray(pw.values, dtype=np.int8)
    if pw.format != "index_free" or pw.degree < 4:
        return vals
    rows = vals.reshape(pw.n_out, pw.degree).copy()
    full = (pw.degree // 4) * 4
    groups = rows[:, :full].reshape(pw.n_out, -1, 4)
    rows[:, :full] = groups[:, :, [0, 2, 1, 3]].reshape(pw.n_out, full)
    return rows.reshape(-1)


def kernel_context(pw: PackedWeights, name: str) -> dict:
    """What the kernel template prints for one layer's entry point ``mcuflow_fc_<name>``."""
    ctx = {
        "name": name,
        "format": pw.format,
        "n_in": pw.n_in,
        "n_out": pw.n_out,
        "degree": pw.degree,
        "col_type": pw.col_ctype,
        "row_type": pw.row_ctype,
    }
    if pw.format == "index_free":
        m, delta = permutation_plan(pw.n_in, pw.p)
        ctx.update(p=pw.p, s=pw.s % pw.n_in if pw.n_in else 0, perm_m=m, perm_delta=delta)
    return ctx


def index_free_scratch(pws: list[PackedWeights]) -> int:
    """int16 entries of the index-free kernels' shared input buffer: the permuted input, its repeated
    head (degree - 1), and one straddling row (degree)."""
    return max((pw.n_in + 2 * pw.degree for pw in pws if pw.format == "index_free"), default=0)
