"""Datasets: MNIST IDX files checked by SHA-256, and the bundled test subset."""

from mcuflow.data import mnist
from mcuflow.data.bundled import bundled_test_subset
from mcuflow.data.idx import parse_idx
from mcuflow.data.mnist import ENV_VAR, MNISTSplit, load_mnist, resolve_data_dir, to_tensors

__all__ = [
    "ENV_VAR",
    "MNISTSplit",
    "mnist",
    "bundled_test_subset",
    "load_mnist",
    "parse_idx",
    "resolve_data_dir",
    "to_tensors",
]
