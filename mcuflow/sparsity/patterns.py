"""Predefined structured sparsity patterns.

A pattern for a junction of ``n_in`` inputs and ``n_out`` outputs with out-degree
``d_out`` gives every output row exactly ``d_in = n_in * d_out / n_out`` distinct
input columns, and every input column exactly ``d_out`` rows.

Two kinds:

* ``random``: a seeded random regular bipartite graph; indices must be stored.
* ``structured``: a closed form the device can regenerate, so no index is stored.
  Number the edges ``t = r * d_in + k`` (row r, slot k) and split them into
  ``d_out`` passes of ``n_in`` edges, ``q = t // n_in``. Then

      col(r, k) = ((t + q * s) mod n_in) * p  mod n_in

  with ``p`` a unit of Z/n_in (so each pass is a permutation of the columns:
  exact out-degree) and ``1 <= s <= n_in - d_in`` (so a row that straddles two
  passes never repeats a column). The device regenerates the pattern from
  ``(n_in, d_in, p, s)``, incrementally: within a pass ``col`` steps by ``p``
  (mod ``n_in``), and the step into a new pass adds a further ``s * p``.

  ``p`` spreads a row's inputs over the whole input (pixels far apart): the
  golden-ratio fraction of ``n_in``, nudged by the seed, moved up to the next
  unit. ``s`` shifts later passes so that their rows do not land on earlier
  rows' input sets: it is chosen on the host (deterministically, from the
  shape alone) as the valid shift giving the most distinct rows, then the
  smallest largest overlap between two rows, then the smallest sum of squared
  overlaps, then the one nearest the first rule ``n_in // 2 + d_in // 2``.
  With the first rule alone 40->40 junctions with in-degree 10 had only 8
  distinct input sets for 40 rows; with the search all 40 are distinct, as in
  every junction of the paper's Table I (and 6,796 of the 6,827 shapes with
  ``n_in <= 64``, ``n_out <= n_in``; the rest lose at most a few rows).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

PATTERN_KINDS = ("structured", "random")
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def in_degree(n_in: int, n_out: int, out_degree: int) -> int:
    """The fixed in-degree of a junction, or a ValueError that suggests a fix."""
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"layer sizes must be positive, got {n_in}->{n_out}")
    if not 1 <= out_degree <= n_out:
        raise ValueError(
            f"out-degree {out_degree} must be between 1 and the output width {n_out} for a {n_in}->{n_out} junction"
        )
    edges = n_in * out_degree
    if edges % n_out:
        raise ValueError(
            f"in-degree {n_in}*{out_degree}/{n_out} = {edges / n_out:.3f} is not a whole number "
            f"for a {n_in}->{n_out} junction with out-degree {out_degree}; " + _suggestion(n_in, n_out, out_degree)
        )
    return edges // n_out


def _suggestion(n_in: int, n_out: int, out_degree: int) -> str:
    step = n_out // math.gcd(n_out, out_degree)
    pad = (-n_in) % step
    degrees = [d for d in range(1, n_out + 1) if (n_in * d) % n_out == 0]
    nearest = min(degrees, key=lambda d: (abs(d - out_degree), d))
    return (
        f"pad the input to {n_in + pad} (add {pad}) or use out-degree {nearest} "
        f"(valid out-degrees for {n_in}->{n_out}: {degrees[:8]}{'...' if len(degrees) > 8 else ''})"
    )


@dataclass(frozen=True)
class StructuredParams:
    """The constants of the closed-form pattern (see the module docstring)."""

    n_in: int
    n_out: int
    d_in: int
    p: int
    s: int


def structured_params(n_in: int, n_out: int, out_degree: int, seed: int) -> StructuredParams:
    d_in = in_degree(n_in, n_out, out_degree)
    if n_in == 1:
        return StructuredParams(n_in, n_out, d_in, 1, 0)
    # Golden-ratio stride, nudged by the seed, moved to the next unit of Z/n_in.
    frac = (_GOLDEN * (seed + 1)) % 1.0
    p = max(1, int(n_in * frac)) % n_in or 1
    while math.gcd(p, n_in) != 1:
        p = p % (n_in - 1) + 1
    return StructuredParams(n_in, n_out, d_in, p, _best_shift(n_in, n_out, d_in))


_SEARCH_BUDGET = 5e6  # work units spent scoring shifts, so building a model stays fast
_MAX_SCORED_ROWS = 1024  # above this the row-overlap matrix is too big to score; distinct rows still are


@functools.lru_cache(maxsize=256)
def _best_shift(n_in: int, n_out: int, d_in: int) -> int:
    """The pass shift ``s`` giving the most distinct rows, then the least row overlap.

    Rows are windows of ``d_in`` consecutive edges; a poor ``s`` lands later
    passes' windows exactly on earlier ones (e.g. 40->40 with d_in = 10 and the
    old rule s = n/2 + d_in/2 gave 8 distinct input sets for 40 rows), which wastes
    neurons. ``p`` only relabels columns, so the score does not depend on it.
    """
    if d_in >= n_in:
        return 0  # dense: a single pass per row, the shift is never used
    legacy = max(1, min(n_in - d_in, n_in // 2 + max(1, d_in // 2)))  # the first rule; kept on ties
    if n_out * d_in <= n_in:
        return legacy  # one pass: no row meets a later pass
    d_out = n_out * d_in // n_in
    edges = n_out * d_in
    # Pair counting costs edges * d_out per candidate; cap the candidates by budget.
    limit = int(min(128, max(16, _SEARCH_BUDGET // (edges * (d_out + 8)))))
    candidates = list(range(1, n_in - d_in + 1))
    if len(candidates) > limit:
        step = len(candidates) / limit
        candidates = sorted({1 + int(i * step) for i in range(limit)} | {legacy})
    best_key, best_s = None, legacy
    t = np.arange(edges, dtype=np.int64)
    q = t // n_in
    rows = t // d_in
    for s in candidates:
        cols = (t + q * s) % n_in
        distinct = len({r.tobytes() for r in np.sort(cols.reshape(n_out, d_in), axis=1)})
        # Overlap of rows i and j = number of columns both use; each column has
        # exactly d_out rows, so count the row pairs column by column.
        worst = spread = 0
        if n_out <= _MAX_SCORED_ROWS:
            by_col = rows[np.argsort(cols, kind="stable")].reshape(n_in, d_out)
            pairs = (by_col[:, :, None] * n_out + by_col[:, None, :]).ravel()
            overlap = np.bincount(pairs, minlength=n_out * n_out).reshape(n_out, n_out)
            np.fill_diagonal(overlap, 0)
            worst, spread = int(overlap.max()), int((overlap * overlap).sum())
        key = (-distinct, worst, spread, abs(s - legacy), s)
        if best_key is None or key < best_key:
            best_key, best_s = key, s
    return int(best_s)


def structured_columns(params: StructuredParams) -> np.ndarray:
    """Column indices, shape (n_out, d_in), of the closed-form pattern."""
    n_in, d_in = params.n_in, params.d_in
    t = np.arange(params.n_out * d_in, dtype=np.int64)
    u = (t + (t // n_in) * params.s) % n_in
    return ((u * params.p) % n_in).reshape(params.n_out, d_in)


def random_columns(n_in: int, n_out: int, out_degree: int, seed: int) -> np.ndarray:
    """Column indices, shape (n_out, d_in), of a seeded random regular pattern."""
    d_in = in_degree(n_in, n_out, out_degree)
    rng = np.random.default_rng(seed)
    if d_in == n_in:  # dense: every row holds every column
        return np.tile(np.arange(n_in), (n_out, 1))
    for _ in range(_RANDOM_ATTEMPTS):
        cols = _deal_and_repair(n_in, n_out, out_degree, d_in, rng)
        if cols is not None:
            return np.sort(cols, axis=1)
    # Near-dense shapes can defeat the repair; a randomly relabelled structured
    # pattern is still regular and free of duplicate edges.
    base = structured_columns(structured_params(n_in, n_out, out_degree, seed))
    relabel = rng.permutation(n_in)
    return np.sort(relabel[base[rng.permutation(n_out)]], axis=1)


_RANDOM_ATTEMPTS = 8


def _deal_and_repair(n_in: int, n_out: int, out_degree: int, d_in: int, rng: np.random.Generator) -> np.ndarray | None:
    # Each column appears out_degree times: deal a shuffled deck into rows, then
    # repair every repeated column in a row by a swap with a row that lacks it.
    deck = np.repeat(np.arange(n_in), out_degree)
    rng.shuffle(deck)
    cols = deck.reshape(n_out, d_in)
    count = np.zeros((n_out, n_in), dtype=np.int32)
    np.add.at(count, (np.repeat(np.arange(n_out), d_in), cols.ravel()), 1)
    for r in range(n_out):
        for k in range(d_in):
            a = cols[r, k]
            if count[r, a] == 1:
                continue
            # Rows without a, holding some b that row r lacks: swap a <-> b.
            rows = np.flatnonzero(count[:, a] == 0)
            rng.shuffle(rows)
            for r2 in rows:
                ks = [k2 for k2 in range(d_in) if count[r, cols[r2, k2]] == 0]
                if ks:
                    k2 = ks[int(rng.integers(len(ks)))]
                    b = cols[r2, k2]
                    cols[r, k], cols[r2, k2] = b, a
                    count[r, a] -= 1
                    count[r, b] += 1
                    count[r2, b] -= 1
                    count[r2, a] += 1
                    break
            else:  # every row lacking a only holds columns row r already has
                return None
    return cols


def pattern_columns(kind: str, n_in: int, n_out: int, out_degree: int, seed: int) -> np.ndarray:
    if kind == "structured":
        return structured_columns(structured_params(n_in, n_out, out_degree, seed))
    if kind == "random":
        return random_columns(n_in, n_out, out_degree, seed)
    raise ValueError(f"unknown sparsity pattern {kind!r}; choose one of {', '.join(PATTERN_KINDS)}")


def columns_to_mask(cols: np.ndarray, n_in: int) -> np.ndarray:
    mask = np.zeros((cols.shape[0], n_in), dtype=bool)
    np.put_along_axis(mask, cols, True, axis=1)
    return mask
