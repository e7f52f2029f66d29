"""A directory of IDX files under MNIST's names: MNIST itself (checked by SHA-256) or other IDX data.

Four files make the two splits, as in MNIST: ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each gzip (``.gz``) or raw. When all four
carry MNIST's checksums the data is MNIST (its name, and its declared normalisation pixels / 255);
any other content under those names (Fashion-MNIST, your own) is generic IDX data, normalised like
any other source. Without the two test files the loader holds out a seeded test split.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcuflow.data import mnist
from mcuflow.data.checks import check_inputs, check_labels, check_same_sample_shape, seeded_split
from mcuflow.data.dataset import DataRecord, Dataset, DataSource, RawSplit
from mcuflow.data.idx import read_idx_file
from mcuflow.data.normalization import Normalization
from mcuflow.errors import DataError

MNIST_NORMALIZATION = Normalization.declared(0.0, mnist.PIXEL_MAX)
STEMS = tuple(stem for pair in mnist.SPLITS.values() for stem in pair)


def find_idx_files(directory: Path) -> dict[str, Path | None]:
    """Each MNIST file name's path in ``directory`` (``.gz`` first), None where absent."""
    found: dict[str, Path | None] = {}
    for stem in STEMS:
        candidates = [directory / (stem + ".gz"), directory / stem]
        found[stem] = next((c for c in candidates if c.is_file()), None)
    return found


def holds_idx_files(directory: Path) -> bool:
    return any(find_idx_files(directory).values())


def mnist_dataset(split: mnist.MNISTSplit, source: str, record: DataRecord | None = None) -> Dataset:
    """MNIST images as a Dataset, normalised as ``record`` says (a checkpoint's), else pixels / 255."""
    norm = record.normalization if record is not None else MNIST_NORMALIZATION
    return Dataset(split.images, split.labels.astype("int64"), norm, "MNIST", source)


def mnist_split(
    which: str, data_dir: str | os.PathLike | None = None, download: bool = True, record: DataRecord | None = None
) -> Dataset:
    """One MNIST split (only its two files are read), strictly checked."""
    split = mnist.load_mnist(which, data_dir, download)
    return mnist_dataset(split, f"MNIST {which} ({mnist.resolve_data_dir(data_dir)})", record)


def mnist_source(data_dir: str | os.PathLike | None = None, download: bool = True) -> DataSource:
    """MNIST, strictly (SHA-256 checked; ``--data-dir`` and ``$MCUFLOW_DATA_DIR``)."""
    directory = mnist.resolve_data_dir(data_dir)
    train = mnist.load_mnist("train", data_dir, download)
    test = mnist.load_mnist("test", data_dir, download)
    return DataSource(
        "MNIST",
        str(directory),
        RawSplit(train.images, train.labels.astype("int64"), f"MNIST train ({directory})"),
        RawSplit(test.images, test.labels.astype("int64"), f"MNIST test ({directory})"),
        declared=MNIST_NORMALIZATION,
    )


def load_idx_dir(directory: str | os.PathLike) -> DataSource:
    directory = Path(directory)
    found = find_idx_files(directory)
    if all(found.values()):
        try:
            return mnist_source(directory, download=False)
        except mnist.ChecksumMismatch:
            pass  # not MNIST: read it as generic IDX data below
    train_images, train_labels, test_images, test_labels = STEMS
    for images, labels in ((train_images, train_labels), (test_images, test_labels)):
        if (found[images] is None) != (found[labels] is None):
            have, lack = (images, labels) if found[images] else (labels, images)
            raise DataError(f"{directory} has {have} but no {lack}(.gz); give both files of a split")
    if found[train_images] is None:
        raise DataError(f"{directory} has no {train_images}(.gz) and {train_labels}(.gz): no training data")

    def read(images: str, labels: str, what: str) -> RawSplit:
        x = check_inputs(read_idx_file(found[images]), str(found[images]))
        y = check_labels(read_idx_file(found[labels]), len(x), str(found[labels]))
        return RawSplit(x, y, f"IDX {what} ({directory})")

    name = f"IDX data ({directory.name})"
    train = read(train_images, train_labels, "train")
    if found[test_images] is None:
        train, test, note = seeded_split(train.x, train.y, f"IDX files in {directory}")
        return DataSource(name, str(directory), train, test, notes=[note])
    test = read(test_images, test_labels, "test")
    check_same_sample_shape(train.x, test.x, str(directory))
    return DataSource(name, str(directory), train, test, notes=[f"{directory}: IDX files without MNIST's checksums"])
