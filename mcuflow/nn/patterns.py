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
  passes never repeats a column). ``p`` spreads a row's inputs over the whole
  input (pixels far apart), ``s`` shifts later passes so rows whose edge ranges
  are a whole pass apart do not see the same inputs (``s`` is half a pass plus
  half a row). Both come from the seed.
"""

from __future__ import annotations

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
            f"out-degree {out_degree} must be between 1 and the output width {n_out} "
            f"for a {n_in}->{n_out} junction"
        )
    edges = n_in * out_degree
    if edges % n_out:
        raise ValueError(
            f"in-degree {n_in}*{out_degree}/{n_out} = {edges / n_out:.3f} is not a whole number "
            f"for a {n_in}->{n_out} junction with out-degree {out_degree}; "
            + _suggestion(n_in, n_out, out_degree)
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
    # Half a pass plus half a row: later passes straddle earlier rows' ranges
    # instead of landing on them, so no two rows share their whole input set.
    s = 0 if d_in >= n_in else max(1, min(n_in - d_in, n_in // 2 + max(1, d_in // 2)))
    return StructuredParams(n_in, n_out, d_in, p, s)


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
            else:  # pragma: no cover - a row lacking a always holds something row r lacks
                raise RuntimeError(f"could not build a random {n_in}->{n_out} pattern (seed {seed})")
    return np.sort(cols, axis=1)


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
