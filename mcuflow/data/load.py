"""``--data PATH``: the loader is chosen by what the path is."""

from __future__ import annotations

import os
from pathlib import Path

from mcuflow.data.dataset import DataSource
from mcuflow.data.idx_dir import holds_idx_files, load_idx_dir, mnist_source
from mcuflow.data.image_folder import holds_class_folders, load_image_folder
from mcuflow.data.npz_file import load_npz
from mcuflow.errors import DataError

KINDS = "a directory of IDX files (MNIST's names), an .npz with x and y, or a folder of class folders of PNGs"


def load_data(path: str | os.PathLike) -> DataSource:
    """An IDX directory, an ``.npz`` (``x``, ``y``, optionally ``x_test``, ``y_test``) or PNG class folders."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no data at {path}; give {KINDS}")
    if path.is_dir():
        if holds_idx_files(path):
            return load_idx_dir(path)
        if holds_class_folders(path):
            return load_image_folder(path)
        raise DataError(f"{path} holds neither IDX files (train-images-idx3-ubyte...) nor class folders of PNGs")
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    if path.suffix.lower() == ".npy":
        raise DataError(f"{path} is a single array; give an .npz with inputs x and labels y")
    raise DataError(f"cannot read {path} as data; give {KINDS}")


def open_source(
    data: str | os.PathLike | None, data_dir: str | os.PathLike | None = None, download: bool = True
) -> DataSource:
    """``--data`` when given, else MNIST from ``--data-dir`` / ``$MCUFLOW_DATA_DIR`` (checked strictly)."""
    if data is not None:
        return load_data(data)
    return mnist_source(data_dir, download)
