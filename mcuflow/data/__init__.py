"""Datasets: one :class:`Dataset` type (inputs, integer labels, source, normalisation) and its loaders.

``load_data(path)`` picks the loader by what the path is (an IDX directory, MNIST itself when its
checksums match; an ``.npz`` of ``x`` and ``y``; a folder of class folders of PNGs); ``from_arrays``
and ``from_torch`` take data in Python. Each gives a :class:`DataSource` whose ``train()`` and
``test()`` are normalised Datasets. The MNIST reader and the bundled test subset remain as they were.
"""

from mcuflow.data import mnist
from mcuflow.data.arrays import from_arrays, from_torch
from mcuflow.data.bundled import bundled_source, bundled_test_subset
from mcuflow.data.dataset import DataRecord, Dataset, DataSource, RawSplit
from mcuflow.data.idx import parse_idx
from mcuflow.data.idx_dir import mnist_dataset, mnist_source, mnist_split
from mcuflow.data.load import load_data, open_source
from mcuflow.data.mnist import ENV_VAR, MNISTSplit, load_mnist, resolve_data_dir, to_tensors
from mcuflow.data.normalization import Normalization

__all__ = [
    "ENV_VAR",
    "DataRecord",
    "DataSource",
    "Dataset",
    "MNISTSplit",
    "Normalization",
    "RawSplit",
    "bundled_source",
    "bundled_test_subset",
    "from_arrays",
    "from_torch",
    "load_data",
    "load_mnist",
    "mnist",
    "mnist_dataset",
    "mnist_source",
    "mnist_split",
    "open_source",
    "parse_idx",
    "resolve_data_dir",
    "to_tensors",
]
