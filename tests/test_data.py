"""MNIST reader: SHA-256 of the uncompressed content, gz or raw, offline download path."""

from __future__ import annotations

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from mcuflow.data import bundled_test_subset, load_mnist, mnist, parse_idx, to_tensors
from mcuflow.errors import DataError

STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def fake_dir(tmp_path, monkeypatch, n=7, gz=True):
    """A directory of tiny fake MNIST files whose hashes are patched in as the expected ones."""
    rng = np.random.default_rng(0)
    blobs = {}
    for stem in STEMS:
        arr = rng.integers(0, 256, (n, 28, 28)) if "images" in stem else rng.integers(0, 10, (n,))
        blobs[stem] = idx_bytes(arr)
        path = tmp_path / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(blobs[stem]) if gz else blobs[stem])
    monkeypatch.setattr(mnist, "SHA256", {s: hashlib.sha256(b).hexdigest() for s, b in blobs.items()})
    mnist._read_checked.cache_clear()
    return blobs


@pytest.mark.parametrize("gz", [True, False])
def test_reads_gz_and_raw(tmp_path, monkeypatch, gz):
    fake_dir(tmp_path, monkeypatch, gz=gz)
    split = load_mnist("test", tmp_path, download=False)
    assert split.images.shape == (7, 28, 28) and split.images.dtype == np.uint8
    assert split.labels.shape == (7,)
    x, y = split.tensors()
    assert x.shape == (7, 784) and float(x.max()) <= 1.0 and float(x.min()) >= 0.0
    assert np.allclose(x.numpy() * 255, split.images.reshape(7, -1))


def test_sha_mismatch_is_data_error(tmp_path, monkeypatch):
    blobs = fake_dir(tmp_path, monkeypatch)
    corrupt = bytearray(blobs["t10k-labels-idx1-ubyte"])
    corrupt[-1] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(corrupt)))
    mnist._read_checked.cache_clear()
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist("test", tmp_path, download=False)


def test_missing_without_download_names_the_flag(tmp_path):
    with pytest.raises(DataError, match="--data-dir") as err:
        load_mnist("test", tmp_path, download=False)
    assert "MCUFLOW_DATA_DIR" in str(err.value)


def test_env_var_is_used(tmp_path, monkeypatch):
    fake_dir(tmp_path, monkeypatch)
    monkeypatch.setenv("MCUFLOW_DATA_DIR", str(tmp_path))
    assert len(load_mnist("train", download=False)) == 7


def test_download_with_monkeypatched_fetch(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    fake_dir(src, monkeypatch)
    calls = []

    def fetch(url, timeout=0):
        calls.append(url)
        return (src / url.rsplit("/", 1)[1]).read_bytes()

    monkeypatch.setattr(mnist, "fetch", fetch)
    dest = tmp_path / "dest"
    split = load_mnist("test", dest)
    assert len(split) == 7 and len(calls) == 2
    assert sorted(p.name for p in dest.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_of_wrong_content_leaves_nothing(tmp_path, monkeypatch):
    fake_dir(tmp_path, monkeypatch)
    monkeypatch.setattr(mnist, "fetch", lambda url, timeout=0: gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05"))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist("test", dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_download_failure_is_data_error(tmp_path, monkeypatch):
    def offline(url, timeout=0):
        raise OSError("Name or service not known")

    monkeypatch.setattr(mnist, "fetch", offline)
    with pytest.raises(DataError, match="could not be downloaded.*--data-dir"):
        load_mnist("train", tmp_path / "none")


@pytest.mark.parametrize(
    "blob,match",
    [
        (b"\x01\x02", "magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01", "bytes"),
    ],
)
def test_bad_idx(blob, match):
    with pytest.raises(DataError, match=match):
        parse_idx(blob)


def test_real_mnist(mnist_dir):
    test = load_mnist("test", mnist_dir, download=False)
    assert test.images.shape == (10000, 28, 28)
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(test.labels, minlength=10).sum() == 10000


def test_bundled_subset_matches_real_test_set(mnist_dir):
    sub = bundled_test_subset()
    test = load_mnist("test", mnist_dir, download=False)
    assert sub.images.shape == (500, 28, 28) and sub.images.dtype == np.uint8
    assert np.array_equal(sub.images, test.images[:500]) and np.array_equal(sub.labels, test.labels[:500])


def test_to_tensors_contract():
    img = np.array([[[0, 255] + [51] * 782]], dtype=np.uint8).reshape(1, 28, 28)
    x, y = to_tensors(img, np.array([3]))
    assert x[0, 0] == 0.0 and x[0, 1] == 1.0 and abs(float(x[0, 2]) - 0.2) < 1e-7 and y.tolist() == [3]


def test_copy_of_real_dir_works(tmp_path, mnist_dir):
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(mnist_dir / (stem + ".gz"), tmp_path)
    assert len(load_mnist("test", tmp_path, download=False)) == 10000
