"""MNIST from a local directory, with the content checked by SHA-256 and an optional download.

The directory comes from the ``data_dir`` argument, else ``$MCUFLOW_DATA_DIR``,
else a per-user cache (``$XDG_CACHE_HOME/mcuflow/mnist``). Files may be gzip
(``*.gz``) or raw; the check is on the uncompressed bytes, so a re-compressed
archive of the same content is accepted.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuflow.data.idx import parse_idx
from mcuflow.errors import DataError

ENV_VAR = "MCUFLOW_DATA_DIR"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT_S = 30.0

# SHA-256 of the uncompressed IDX content (from the MNIST distribution).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
N_PIXELS = 28 * 28
PIXEL_MAX = 255  # the declared normalisation of MNIST: x = pixel / 255, the device's input contract


class ChecksumMismatch(DataError):
    """A file under an MNIST name whose content is not MNIST's (corrupt, or other IDX data)."""


@dataclass(frozen=True)
class MNISTSplit:
    """uint8 images ``(N, 28, 28)`` and uint8 labels ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> MNISTSplit:
        return self if n is None else MNISTSplit(self.images[:n], self.labels[:n])

    def tensors(self):
        return to_tensors(self.images, self.labels)


def default_data_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mcuflow" / "mnist"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The argument if given, else ``$MCUFLOW_DATA_DIR``, else the user cache."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def fetch(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """Download ``url`` (tests replace this to stay offline)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https mirrors
        return resp.read()


def _decompress(blob: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{name} is not a valid gzip file ({err})") from None


def _check(content: bytes, stem: str, source: str) -> None:
    digest = hashlib.sha256(content).hexdigest()
    if digest != SHA256[stem]:
        raise ChecksumMismatch(
            f"{source} has SHA-256 {digest[:16]}... of its uncompressed content, expected {SHA256[stem][:16]}... "
            "(corrupt or not MNIST; delete it to download again)"
        )


def _download(stem: str, directory: Path) -> Path:
    errors = []
    for mirror in MIRRORS:
        url = mirror + stem + ".gz"
        try:
            blob = fetch(url)
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as err:
            errors.append(f"{url}: {getattr(err, 'reason', err)}")
            continue
        _check(_decompress(blob, url), stem, url)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / (stem + ".gz")
            fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", dir=directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise DataError(f"cannot write MNIST to {directory}: {err}; pass --data-dir or set {ENV_VAR}") from None
        return target
    raise DataError(
        f"MNIST file {stem} is not in {directory} and could not be downloaded ({'; '.join(errors)}); "
        f"pass --data-dir DIR or set {ENV_VAR} to a directory holding the four MNIST IDX files"
    )


def _locate(stem: str, directory: Path, download: bool) -> Path:
    for candidate in (directory / (stem + ".gz"), directory / stem):
        if candidate.is_file():
            return candidate
    if not download:
        raise DataError(
            f"MNIST file {stem}(.gz) not found in {directory}; pass --data-dir DIR or set {ENV_VAR} "
            "to a directory holding the four MNIST IDX files"
        )
    return _download(stem, directory)


@functools.lru_cache(maxsize=8)
def _read_checked(path: str, stem: str, size: int, mtime_ns: int) -> np.ndarray:
    # size and mtime are part of the cache key so a replaced file is read again.
    raw = Path(path).read_bytes()
    content = _decompress(raw, path) if path.endswith(".gz") else raw
    _check(content, stem, path)
    arr = parse_idx(content, path)
    arr.setflags(write=False)
    return arr


def read_file(stem: str, directory: Path, download: bool = True) -> np.ndarray:
    path = _locate(stem, directory, download)
    try:
        st = path.stat()
        return _read_checked(str(path), stem, st.st_size, st.st_mtime_ns)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True) -> MNISTSplit:
    """Load the ``train`` (60,000) or ``test`` (10,000) split as uint8 arrays."""
    if split not in SPLITS:
        raise DataError(f"unknown MNIST split {split!r}; choose train or test")
    directory = resolve_data_dir(data_dir)
    image_stem, label_stem = SPLITS[split]
    images = read_file(image_stem, directory, download)
    labels = read_file(label_stem, directory, download)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise DataError(f"MNIST {split} files in {directory} have shapes {images.shape} and {labels.shape}")
    return MNISTSplit(images, labels)


def to_tensors(images: np.ndarray, labels: np.ndarray | None = None):
    """Images as float32 ``(N, 784)`` pixels/255 in [0, 1] (the device's input contract), labels as int64.

    torch is imported here, at the edge, so reading data loads no torch."""
    import torch

    x = torch.from_numpy(np.asarray(images, dtype=np.uint8).reshape(len(images), -1).astype(np.float32) / 255.0)
    y = None if labels is None else torch.from_numpy(np.asarray(labels).astype(np.int64))
    return x, y
