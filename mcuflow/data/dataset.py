"""One Dataset type for every source: stored values, integer labels, where they came from and the
normalisation that turns them into model inputs.

A :class:`DataSource` is what a loader returns: the raw train and test splits of one place (an IDX
directory, an ``.npz``, a folder of PNGs, arrays). Asking it for a split gives a :class:`Dataset`
normalised with the rule fitted on its *training* split, or with the one a checkpoint recorded
(:class:`DataRecord`), so test data is treated exactly as the training data was.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from mcuflow import jsonshape
from mcuflow.data.normalization import Normalization
from mcuflow.errors import DataError

META_KEY = "data"  # the key of a checkpoint's meta that holds its DataRecord


@dataclass(frozen=True)
class RawSplit:
    """One split as stored: ``x`` (N, ...) of numbers, ``y`` (N,) int64 labels, and where they are from."""

    x: np.ndarray
    y: np.ndarray
    where: str

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` (N, ...) float32 = ``normalization.apply(raw)``, labels ``y`` (N,) int64."""

    raw: np.ndarray
    y: np.ndarray
    normalization: Normalization
    name: str  # "MNIST", "digits", ...
    source: str  # where these samples came from, for messages and reports
    classes: tuple[str, ...] | None = None  # class names (image folders), index = label

    def __len__(self) -> int:
        return len(self.y)

    @functools.cached_property
    def x(self) -> np.ndarray:
        return self.normalization.apply(self.raw)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.raw.shape[1:])

    @property
    def input_width(self) -> int:
        """Values per sample: what the model's (flattened) input takes."""
        return math.prod(self.input_shape)

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self.y) else 0

    def inputs(self, dtype: type = np.float32) -> np.ndarray:
        """The normalised inputs flattened to (N, input_width); float64 is computed from ``raw`` directly."""
        if dtype == np.float32:
            return self.x.reshape(len(self), -1)
        return self.normalization.apply(self.raw.reshape(len(self), -1), dtype)

    def rows(self, start: int | None = None, stop: int | None = None) -> Dataset:
        """Samples ``start:stop``, normalised the same way; the source says which."""
        lo, hi, _ = slice(start, stop).indices(len(self))
        if (lo, hi) == (0, len(self)):
            return self
        which = f"first {hi:,}" if lo == 0 else f"samples {lo:,} to {hi - 1:,}"
        return Dataset(
            self.raw[lo:hi], self.y[lo:hi], self.normalization, self.name, f"{self.source}, {which}", self.classes
        )

    def head(self, n: int | None) -> Dataset:
        return self if n is None else self.rows(None, n)

    def tensors(self):
        """``(x, y)`` as torch tensors, x flattened to (N, input_width) float32 (torch only here)."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.inputs())), torch.from_numpy(self.y)

    def record(self) -> DataRecord:
        return DataRecord(
            name=self.name,
            source=self.source,
            input_shape=list(self.input_shape),
            n_classes=self.n_classes,
            normalization=self.normalization,
            classes=None if self.classes is None else list(self.classes),
        )


@dataclass(frozen=True)
class DataRecord:
    """What a checkpoint's meta keeps of its training data, so later splits are normalised the same."""

    name: str
    source: str
    input_shape: list[int]
    n_classes: int
    normalization: Normalization
    classes: list[str] | None = None

    def to_meta(self) -> dict:
        return jsonshape.dump(self)

    @classmethod
    def from_meta(cls, meta: dict | None, where: str = "the checkpoint") -> DataRecord | None:
        """The record in a checkpoint's meta, or None for checkpoints saved without one."""
        if not meta or META_KEY not in meta:
            return None
        try:
            return jsonshape.load(cls, meta[META_KEY], META_KEY)
        except (jsonshape.ShapeError, DataError) as err:
            raise DataError(f"{where} has a malformed data record in its meta: {err}") from None


@dataclass(frozen=True)
class DataSource:
    """The raw train and test splits of one place, before normalisation."""

    name: str
    origin: str  # the path (or "arrays")
    train_raw: RawSplit
    test_raw: RawSplit
    declared: Normalization | None = None  # the loader's own rule (MNIST: pixels / 255)
    classes: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)  # e.g. how the test split was made

    def normalization(self, rule: str | Normalization = "auto") -> Normalization:
        """``auto``: the declared rule, else min/max of the training split (inputs in [0, 1])."""
        if isinstance(rule, Normalization):
            return rule
        if rule == "auto":
            if self.declared is not None:
                return self.declared
            rule = "minmax"
        return Normalization.fit(self.train_raw.x, rule, f"the training split of {self.name}")

    def split(self, which: str, normalization: str | Normalization = "auto") -> Dataset:
        if which not in ("train", "test"):
            raise DataError(f"unknown split {which!r}; choose train or test")
        raw = self.train_raw if which == "train" else self.test_raw
        return Dataset(raw.x, raw.y, self.normalization(normalization), self.name, raw.where, self.classes)

    def train(self, normalization: str | Normalization = "auto") -> Dataset:
        return self.split("train", normalization)

    def test(self, normalization: str | Normalization = "auto") -> Dataset:
        return self.split("test", normalization)

    def for_model(self, which: str, record: DataRecord | None) -> Dataset:
        """Split ``which`` normalised as the model's training data was (its record), else by ``auto``."""
        return self.split(which, record.normalization if record is not None else "auto")
