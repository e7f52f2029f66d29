"""The small MNIST test subset shipped in ``examples/`` (CC BY-SA 3.0; see examples/README.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mcuflow.data.dataset import DataSource, RawSplit
from mcuflow.data.idx_dir import MNIST_NORMALIZATION
from mcuflow.data.mnist import MNISTSplit
from mcuflow.errors import DataError
from mcuflow.npz import read_npz
from mcuflow.paths import examples_dir

BUNDLED_NAME = "mnist_test_500.npz"
BUNDLED_SOURCE = "bundled MNIST test subset (examples/)"


def bundled_test_subset(path: str | os.PathLike | None = None) -> MNISTSplit:
    """The first 500 MNIST test images (uint8 ``(500, 28, 28)``) and their labels."""
    path = Path(path) if path else examples_dir() / BUNDLED_NAME
    z = read_npz(path, "the bundled MNIST subset", DataError)
    if "images" not in z or "labels" not in z:
        raise DataError(f"{path} has no 'images' and 'labels' arrays")
    images, labels = z["images"], z["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise DataError(f"{path} does not hold uint8 images (N, 28, 28) with N labels")
    return MNISTSplit(images, labels.astype(np.uint8))


def write_bundled_subset(split: MNISTSplit, n: int, path: str | os.PathLike) -> Path:
    """Write the first ``n`` samples of ``split`` as a compressed npz (atomically)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, images=split.images[:n], labels=split.labels[:n])
    os.replace(tmp, path)
    return path


def bundled_source(path: str | os.PathLike | None = None) -> DataSource:
    """The bundled subset as a source whose two splits are both these 500 test images (quick runs, and the
    calibration fallback when no MNIST is at hand), normalised as MNIST (pixels / 255)."""
    split = bundled_test_subset(path)
    raw = RawSplit(split.images, split.labels.astype(np.int64), BUNDLED_SOURCE)
    return DataSource("MNIST", str(path or examples_dir() / BUNDLED_NAME), raw, raw, declared=MNIST_NORMALIZATION)
