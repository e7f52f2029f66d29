"""Sparsity patterns: exact degrees, no duplicate edges, reproducibility, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuflow.sparsity.patterns import (
    in_degree,
    pattern_columns,
    random_columns,
    structured_columns,
    structured_params,
)


def check_regular(cols: np.ndarray, n_in: int, n_out: int, d_out: int) -> None:
    d_in = n_in * d_out // n_out
    assert cols.shape == (n_out, d_in)
    assert cols.min() >= 0 and cols.max() < n_in
    # exact out-degree: every input column used d_out times
    assert (np.bincount(cols.ravel(), minlength=n_in) == d_out).all()
    # exact in-degree without duplicate edges: every row has d_in distinct columns
    assert all(len(set(row.tolist())) == d_in for row in cols)


@st.composite
def junctions(draw):
    n_out = draw(st.integers(1, 48))
    d_out = draw(st.integers(1, n_out))
    # choose n_in so that n_in * d_out is a multiple of n_out
    step = n_out // np.gcd(n_out, d_out)
    n_in = step * draw(st.integers(1, max(1, 96 // step)))
    return n_in, n_out, d_out


@pytest.mark.parametrize("kind", ["structured", "random"])
@settings(max_examples=60, deadline=None)
@given(j=junctions(), seed=st.integers(0, 1000))
def test_patterns_are_regular(kind, j, seed):
    n_in, n_out, d_out = j
    check_regular(pattern_columns(kind, n_in, n_out, d_out, seed), n_in, n_out, d_out)


@pytest.mark.parametrize(
    "shape", [(800, 40, 2), (40, 40, 9), (40, 10, 10), (800, 40, 4), (40, 40, 10), (800, 40, 19), (40, 40, 24)]
)
@pytest.mark.parametrize("kind", ["structured", "random"])
def test_paper_junctions(kind, shape):
    check_regular(pattern_columns(kind, *shape, seed=3), *shape)


@pytest.mark.parametrize(
    "shape",
    [
        (800, 40, 2),
        (40, 40, 9),
        (800, 40, 4),
        (40, 40, 10),
        (800, 40, 6),
        (40, 40, 11),
        (800, 40, 13),
        (40, 40, 17),
        (800, 40, 19),
        (40, 40, 24),
    ],
)
def test_structured_rows_are_distinct_on_table_one_junctions(shape):
    cols = structured_columns(structured_params(*shape, seed=0))
    assert len({tuple(sorted(r)) for r in cols.tolist()}) == shape[1]


def test_structured_is_the_documented_closed_form():
    p = structured_params(800, 40, 2, seed=1)
    cols = structured_columns(p)
    for r in (0, 7, 39):
        for k in (0, 13, p.d_in - 1):
            t = r * p.d_in + k
            q = t // p.n_in
            assert cols[r, k] == (((t + q * p.s) % p.n_in) * p.p) % p.n_in
    assert np.gcd(p.p, p.n_in) == 1
    assert 1 <= p.s <= p.n_in - p.d_in


@pytest.mark.parametrize("kind", ["structured", "random"])
def test_reproducible_from_seed(kind):
    a = pattern_columns(kind, 800, 40, 2, seed=5)
    b = pattern_columns(kind, 800, 40, 2, seed=5)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["structured", "random"])
def test_different_seeds_differ(kind):
    a = pattern_columns(kind, 800, 40, 2, seed=0)
    b = pattern_columns(kind, 800, 40, 2, seed=1)
    assert not np.array_equal(np.sort(a, axis=1), np.sort(b, axis=1))


def test_random_differs_from_structured():
    assert not np.array_equal(
        np.sort(random_columns(40, 40, 9, 0), axis=1), np.sort(pattern_columns("structured", 40, 40, 9, 0), axis=1)
    )


def test_non_integral_degree_message_suggests_fix():
    with pytest.raises(ValueError) as err:
        in_degree(784, 40, 2)
    msg = str(err.value)
    assert "not a whole number" in msg
    assert "pad the input to 800" in msg
    assert "out-degree" in msg


@pytest.mark.parametrize("args", [(10, 5, 0), (10, 5, 6), (0, 5, 1)])
def test_degree_out_of_range(args):
    with pytest.raises(ValueError):
        in_degree(*args)


def test_unknown_pattern_kind():
    with pytest.raises(ValueError, match="unknown sparsity pattern"):
        pattern_columns("banded", 8, 4, 2, 0)
