"""Data handed over in Python: numpy arrays, or torch datasets (torch is touched only here, lazily)."""

from __future__ import annotations

import numpy as np

from mcuflow.data.checks import check_inputs, check_labels, check_same_sample_shape, seeded_split
from mcuflow.data.dataset import DataSource, RawSplit
from mcuflow.data.normalization import Normalization
from mcuflow.errors import DataError


def from_arrays(
    x,
    y,
    x_test=None,
    y_test=None,
    *,
    name: str = "arrays",
    normalization: Normalization | None = None,
) -> DataSource:
    """A source from arrays ``x`` (N, ...) and labels ``y`` (N,); without a test split one is held out
    (seeded). ``normalization`` declares the rule; by default it is fitted on ``x`` (min/max)."""
    if (x_test is None) != (y_test is None):
        raise DataError("give x_test and y_test together, or neither")
    x = check_inputs(x, f"{name} (x)")
    y = check_labels(y, len(x), f"{name} (y)")
    notes: list[str] = []
    if x_test is None:
        train, test, note = seeded_split(x, y, name)
        notes.append(note)
    else:
        xt = check_inputs(x_test, f"{name} (x_test)")
        yt = check_labels(y_test, len(xt), f"{name} (y_test)")
        check_same_sample_shape(x, xt, name)
        train, test = RawSplit(x, y, f"{name} (x, y)"), RawSplit(xt, yt, f"{name} (x_test, y_test)")
    return DataSource(name, "arrays", train, test, declared=normalization, notes=notes)


def _stack_torch(dataset, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(input, label)`` item of a torch-style dataset, stacked."""
    import torch

    try:
        n = len(dataset)
    except TypeError:
        raise DataError(f"{what} has no length; pass a map-style dataset of (input, label) pairs") from None
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise DataError(f"{what}[{i}] is not an (input, label) pair")
        xi, yi = item[0], item[1]
        xs.append(xi.detach().cpu().numpy() if isinstance(xi, torch.Tensor) else np.asarray(xi))
        ys.append(yi.detach().cpu().numpy() if isinstance(yi, torch.Tensor) else np.asarray(yi))
    if not xs:
        raise DataError(f"{what} is empty")
    shapes = {a.shape for a in xs}
    if len(shapes) > 1:
        raise DataError(f"{what} holds inputs of several shapes: {', '.join(map(str, sorted(shapes)[:3]))}")
    return np.stack(xs), np.stack([np.reshape(y, ()) if np.size(y) == 1 else y for y in ys])


def from_torch(
    train, test=None, *, name: str = "torch dataset", normalization: Normalization | None = None
) -> DataSource:
    """A source from torch datasets (``dataset[i] == (input, label)``), e.g. torchvision's."""
    x, y = _stack_torch(train, name)
    if test is None:
        return from_arrays(x, y, name=name, normalization=normalization)
    xt, yt = _stack_torch(test, f"{name} (test)")
    return from_arrays(x, y, xt, yt, name=name, normalization=normalization)
