"""An ``.npz`` of arrays ``x`` (N, ...) and ``y`` (N,), optionally ``x_test`` and ``y_test``."""

from __future__ import annotations

import os
from pathlib import Path

from mcuflow.data.checks import check_inputs, check_labels, check_same_sample_shape, seeded_split
from mcuflow.data.dataset import DataSource, RawSplit
from mcuflow.errors import DataError
from mcuflow.npz import read_npz


def load_npz(path: str | os.PathLike) -> DataSource:
    path = Path(path)
    z = read_npz(path, "the data file", DataError)
    missing = [k for k in ("x", "y") if k not in z]
    if missing:
        raise DataError(
            f"{path} has no array {' or '.join(repr(k) for k in missing)} (it holds {', '.join(sorted(z)) or 'nothing'}); "
            "give x (N, ...) inputs and y (N,) labels, optionally x_test and y_test"
        )
    if ("x_test" in z) != ("y_test" in z):
        have, lack = ("x_test", "y_test") if "x_test" in z else ("y_test", "x_test")
        raise DataError(f"{path} has {have} but no {lack}; give both or neither")
    x = check_inputs(z["x"], f"{path} (x)")
    y = check_labels(z["y"], len(x), f"{path} (y)")
    notes: list[str] = []
    if "x_test" in z:
        xt = check_inputs(z["x_test"], f"{path} (x_test)")
        yt = check_labels(z["y_test"], len(xt), f"{path} (y_test)")
        check_same_sample_shape(x, xt, str(path))
        train, test = RawSplit(x, y, f"{path} (x, y)"), RawSplit(xt, yt, f"{path} (x_test, y_test)")
    else:
        train, test, note = seeded_split(x, y, str(path))
        notes.append(note)
    return DataSource(path.stem, str(path), train, test, notes=notes)
