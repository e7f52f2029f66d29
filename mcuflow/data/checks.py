"""The checks every loader applies, so each mistake is one line naming the file, and the one
deterministic train/test split a loader makes when the data brings none."""

from __future__ import annotations

import numpy as np

from mcuflow.data.dataset import RawSplit
from mcuflow.errors import DataError

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def check_inputs(x, where: str) -> np.ndarray:
    """Numeric, finite samples ``(N, ...)``, N >= 1; returned as an ndarray."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{where}: inputs must be numbers, got dtype {a.dtype}")
    if a.ndim < 2:
        raise DataError(f"{where}: inputs must be (N, ...) with one row per sample, got shape {a.shape}")
    if len(a) == 0 or a[0].size == 0:
        raise DataError(f"{where}: no samples (inputs have shape {a.shape})")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise DataError(f"{where}: inputs hold NaN or infinite values")
    return a


def check_labels(y, n: int, where: str) -> np.ndarray:
    """``n`` non-negative integer class indices (integral floats accepted), as int64."""
    a = np.asarray(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2 and a.shape[0] == n and a.shape[1] > 1:
        raise DataError(f"{where}: labels have shape {a.shape} (one-hot?); give one class index per sample")
    if a.ndim != 1:
        raise DataError(f"{where}: labels must be one class index per sample (N,), got shape {a.shape}")
    if len(a) != n:
        raise DataError(f"{where}: {len(a):,} labels for {n:,} samples")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{where}: labels must be integer class indices, got dtype {a.dtype}")
    whole = np.isfinite(a) & (a == np.round(a)) if np.issubdtype(a.dtype, np.floating) else None
    if whole is not None and not whole.all():
        raise DataError(f"{where}: labels must be integer class indices, got {a[~whole][0]}")
    if len(a) and a.min() < 0:
        raise DataError(f"{where}: labels must be class indices 0, 1, ..., got {a.min()}")
    return a.astype(np.int64)


def check_same_sample_shape(train: np.ndarray, test: np.ndarray, where: str) -> None:
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{where}: training samples have shape {train.shape[1:]}, test samples {test.shape[1:]}")


def seeded_split(x: np.ndarray, y: np.ndarray, where: str) -> tuple[RawSplit, RawSplit, str]:
    """Hold out ``TEST_FRACTION`` of a seeded permutation as the test split, in the stored order.

    The same data always gives the same split (a fixed seed, no dependence on the machine)."""
    n = len(y)
    if n < 2:
        raise DataError(f"{where}: {n} sample cannot be split into training and test data")
    n_test = max(1, round(n * TEST_FRACTION))
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    note = (
        f"no test split in {where}: held out {n_test:,} of {n:,} samples "
        f"({TEST_FRACTION:.0%} of a permutation with seed {SPLIT_SEED}) as the test split"
    )
    return (
        RawSplit(x[train_idx], y[train_idx], f"{where}, training split ({n - n_test:,} of {n:,}, seeded)"),
        RawSplit(x[test_idx], y[test_idx], f"{where}, test split ({n_test:,} of {n:,}, seeded)"),
        note,
    )
