"""Tier 1: the Dataset type, each data source (IDX directory, .npz, PNG folders, arrays, torch
datasets), the normalisation and its record, and every refusal as one clear DataError."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from mcuflow import reference
from mcuflow.data import (
    DataRecord,
    Normalization,
    from_arrays,
    from_torch,
    load_data,
    mnist,
    mnist_dataset,
    to_tensors,
)
from mcuflow.data.checks import TEST_FRACTION
from mcuflow.errors import ConfigError, DataError

DIGITS = ROOT / "examples" / "digits.npz"
STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(arr: np.ndarray, code: int = 0x08, dtype: str = "u1") -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def write_idx_dir(d, n_train=9, n_test=4, shape=(5, 6), stems=STEMS, gz=True):
    rng = np.random.default_rng(1)
    arrays = {
        STEMS[0]: rng.integers(0, 256, (n_train, *shape)),
        STEMS[1]: rng.integers(0, 3, n_train),
        STEMS[2]: rng.integers(0, 256, (n_test, *shape)),
        STEMS[3]: rng.integers(0, 3, n_test),
    }
    d.mkdir(exist_ok=True)
    for stem in stems:
        blob = idx_bytes(arrays[stem])
        (d / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(blob) if gz else blob)
    return arrays


# -- normalisation and the MNIST contract ---------------------------------------


def test_mnist_normalisation_gives_exactly_the_old_inputs():
    """Every pixel value: float32 inputs equal to_tensors', float64 ones to p/255, int8 ones to pixel - 128."""
    images = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    ds = mnist_dataset(mnist.MNISTSplit(images, np.zeros(4, np.uint8)), "test")
    old_x, _ = to_tensors(images)
    assert np.array_equal(ds.inputs(), old_x.numpy()) and ds.inputs().dtype == np.float32
    assert np.array_equal(ds.inputs(np.float64), images.reshape(4, -1).astype(np.float64) / 255.0)
    q = reference.quantize_input(ds.inputs(np.float64), 1 / 255, -128)
    assert np.array_equal(q, reference.pixels_to_input(images))
    assert ds.normalization == Normalization(0.0, 255.0, "declared")


def test_fitted_rules_and_their_record_round_trip():
    raw = np.array([[2.0, 4.0], [6.0, 10.0]])
    mm = Normalization.fit(raw, "minmax")
    assert (mm.shift, mm.divisor) == (2.0, 8.0) and mm.apply(raw).min() == 0 and mm.apply(raw).max() == 1
    ms = Normalization.fit(raw, "meanstd")
    assert abs(float(ms.apply(raw, np.float64).mean())) < 1e-12 and float(ms.apply(raw, np.float64).std()) == 1.0
    assert Normalization.fit(raw, "none") == Normalization.identity()
    ds = from_arrays(raw, [0, 1], raw, [1, 0], normalization=ms).train()
    record = DataRecord.from_meta({"data": ds.record().to_meta()})
    assert record.normalization == ms and record.input_shape == [2] and record.n_classes == 2
    assert DataRecord.from_meta({"accuracy": 1.0}) is None  # checkpoints saved before records existed


@pytest.mark.parametrize(
    "text,expected",
    [("auto", "auto"), ("MinMax", "minmax"), ("0.5,2", Normalization(0.5, 2.0, "declared"))],
)
def test_normalize_option_parses(text, expected):
    assert Normalization.parse(text) == expected


@pytest.mark.parametrize("text", ["z-score", "1,0", "1,2,3", "nan,1"])
def test_bad_normalize_option_is_a_config_error(text):
    with pytest.raises(ConfigError, match="--normalize"):
        Normalization.parse(text)


def test_constant_data_cannot_be_fitted():
    with pytest.raises(DataError, match="every value"):
        Normalization.fit(np.ones((3, 2)), "minmax")
    with pytest.raises(DataError, match="every value"):
        Normalization.fit(np.ones((3, 2)), "meanstd")


def test_a_malformed_record_is_one_line():
    with pytest.raises(DataError, match="malformed data record"):
        DataRecord.from_meta({"data": {"name": "x"}}, "m.pt")


# -- .npz -----------------------------------------------------------------------


def test_digits_npz_split_is_deterministic_and_said():
    src = load_data(DIGITS)
    train, test = src.train(), src.test()
    assert src.name == "digits" and len(train) + len(test) == 1797
    assert len(test) == round(1797 * TEST_FRACTION) and "seed 0" in src.notes[0]
    assert train.input_shape == (8, 8) and train.input_width == 64 and train.n_classes == 10
    assert train.normalization == Normalization(0.0, 16.0, "minmax") and test.normalization == train.normalization
    assert train.x.dtype == np.float32 and train.x.min() == 0.0 and train.x.max() == 1.0
    again = load_data(DIGITS).test()
    assert np.array_equal(again.raw, test.raw) and np.array_equal(again.y, test.y)
    x, y = train.tensors()
    assert tuple(x.shape) == (len(train), 64) and str(y.dtype) == "torch.int64"


def test_npz_with_its_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz", x=rng.random((10, 3)), y=np.arange(10) % 2, x_test=rng.random((4, 3)), y_test=[0, 1, 1, 0]
    )
    src = load_data(tmp_path / "d.npz")
    assert len(src.train()) == 10 and len(src.test()) == 4 and not src.notes
    assert src.test().source.endswith("(x_test, y_test)")


def test_integral_float_labels_are_accepted(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.eye(5), y=np.array([0.0, 1.0, 2.0, 1.0, 0.0]))
    assert load_data(tmp_path / "d.npz").train().y.dtype == np.int64


@pytest.mark.parametrize(
    "arrays,match",
    [
        (dict(y=np.arange(3)), "no array 'x'"),
        (dict(x=np.zeros((3, 2))), "no array 'y'"),
        (dict(x=np.zeros((3, 2)), y=np.arange(2)), "2 labels for 3 samples"),
        (dict(x=np.zeros((3, 2)), y=np.array([0.0, 0.5, 1.0])), "integer class indices, got 0.5"),
        (dict(x=np.zeros((3, 2)), y=np.array(["a", "b", "c"])), "integer class indices, got dtype"),
        (dict(x=np.zeros((3, 2)), y=np.array([0, -1, 1])), "class indices 0, 1"),
        (dict(x=np.zeros((3, 2)), y=np.eye(3)), "one-hot"),
        (dict(x=np.array(["a", "b"]), y=np.arange(2)), "inputs must be numbers"),
        (dict(x=np.zeros(3), y=np.arange(3)), r"\(N, \.\.\.\)"),
        (dict(x=np.zeros((0, 2)), y=np.arange(0)), "no samples"),
        (dict(x=np.array([[0.0, np.nan], [1.0, 1.0]]), y=np.arange(2)), "NaN"),
        (dict(x=np.zeros((3, 2)), y=np.arange(3), x_test=np.zeros((2, 2))), "no y_test"),
        (
            dict(x=np.zeros((3, 2)), y=np.arange(3), x_test=np.zeros((2, 5)), y_test=np.arange(2)),
            r"test samples \(5,\)",
        ),
        (dict(x=np.zeros((1, 2)), y=np.arange(1)), "cannot be split"),
    ],
)
def test_bad_npz_is_one_data_error(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match) as err:
        load_data(tmp_path / "d.npz").train()
    assert "\n" not in str(err.value)


def test_a_damaged_npz_or_a_pickle_is_one_data_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="cannot read the data file"):
        load_data(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([object()]), y=np.arange(1))
    with pytest.raises(DataError, match="cannot read the data file"):
        load_data(tmp_path / "obj.npz")


@pytest.mark.parametrize(
    "name,match",
    [("missing.npz", "no data at"), ("x.npy", "single array"), ("x.csv", "cannot read")],
)
def test_paths_that_are_not_data(tmp_path, name, match):
    if name != "missing.npz":
        np.save(tmp_path / "x.npy", np.zeros(3))
        (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=match):
        load_data(tmp_path / name)


def test_an_empty_directory_is_not_data(tmp_path):
    with pytest.raises(DataError, match="neither IDX files"):
        load_data(tmp_path)


# -- IDX directories --------------------------------------------------------------


def test_generic_idx_directory_is_read_by_mnist_names(tmp_path):
    arrays = write_idx_dir(tmp_path / "idx")
    src = load_data(tmp_path / "idx")
    assert src.name == "IDX data (idx)" and "without MNIST's checksums" in src.notes[0]
    train, test = src.train(), src.test()
    assert np.array_equal(train.raw, arrays[STEMS[0]]) and np.array_equal(test.y, arrays[STEMS[3]])
    assert train.normalization.rule == "minmax" and train.input_shape == (5, 6)


def test_idx_directory_with_mnist_checksums_is_mnist(tmp_path, monkeypatch):
    write_idx_dir(tmp_path / "m", shape=(28, 28), gz=False)
    sums = {s: hashlib.sha256((tmp_path / "m" / s).read_bytes()).hexdigest() for s in STEMS}
    monkeypatch.setattr(mnist, "SHA256", sums)
    mnist._read_checked.cache_clear()
    src = load_data(tmp_path / "m")
    assert src.name == "MNIST" and src.train().normalization == Normalization(0.0, 255.0, "declared")


def test_idx_training_files_alone_get_a_seeded_test_split(tmp_path):
    write_idx_dir(tmp_path / "idx", n_train=10, stems=STEMS[:2])
    src = load_data(tmp_path / "idx")
    assert len(src.train()) == 8 and len(src.test()) == 2 and "held out 2 of 10" in src.notes[0]


def test_idx_float_elements(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    (d / STEMS[0]).write_bytes(idx_bytes(np.linspace(0, 1, 12).reshape(4, 3), 0x0D, "f4"))
    (d / STEMS[1]).write_bytes(idx_bytes(np.array([0, 1, 0, 1])))
    src = load_data(d)
    assert src.train_raw.x.dtype == np.float32 and len(src.train()) + len(src.test()) == 4


@pytest.mark.parametrize(
    "stems,match",
    [
        ([STEMS[0]], "no train-labels-idx1-ubyte"),
        ([STEMS[2], STEMS[3]], "no training data"),
        ([STEMS[0], STEMS[1], STEMS[3]], "no t10k-images-idx3-ubyte"),
    ],
)
def test_incomplete_idx_directory(tmp_path, stems, match):
    write_idx_dir(tmp_path / "idx", stems=stems)
    with pytest.raises(DataError, match=match):
        load_data(tmp_path / "idx")


def test_idx_label_count_must_match(tmp_path):
    write_idx_dir(tmp_path / "idx")
    (tmp_path / "idx" / (STEMS[1] + ".gz")).write_bytes(gzip.compress(idx_bytes(np.arange(3))))
    with pytest.raises(DataError, match="3 labels for 9 samples"):
        load_data(tmp_path / "idx")


def test_idx_test_shape_must_match(tmp_path):
    write_idx_dir(tmp_path / "idx")
    (tmp_path / "idx" / (STEMS[2] + ".gz")).write_bytes(gzip.compress(idx_bytes(np.zeros((4, 2, 2)))))
    with pytest.raises(DataError, match=r"training samples have shape \(5, 6\), test samples \(2, 2\)"):
        load_data(tmp_path / "idx")


def test_a_broken_idx_gzip(tmp_path):
    write_idx_dir(tmp_path / "idx")
    (tmp_path / "idx" / (STEMS[0] + ".gz")).write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a valid gzip file"):
        load_data(tmp_path / "idx")


# -- folders of PNG images ----------------------------------------------------------


def write_pngs(root, classes=("cat", "dog"), per_class=5, size=(6, 4), mode="L"):
    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            channels = () if mode == "L" else (3,)
            a = rng.integers(0, 256, (size[1], size[0], *channels)).astype(np.uint8)
            Image.fromarray(a, mode).save(root / c / f"{i}.png")


def test_png_class_folders(tmp_path):
    write_pngs(tmp_path / "pets", classes=("dog", "cat"))
    src = load_data(tmp_path / "pets")
    train = src.train()
    assert src.classes == ("cat", "dog") and train.record().classes == ["cat", "dog"]  # sorted: cat is 0
    assert len(train) + len(src.test()) == 10 and train.input_shape == (4, 6) and "seed 0" in src.notes[0]
    first_cat = np.asarray(Image.open(tmp_path / "pets" / "cat" / "0.png"))
    everything = np.concatenate([src.train_raw.x, src.test_raw.x])
    labels = np.concatenate([src.train_raw.y, src.test_raw.y])
    assert any(np.array_equal(img, first_cat) and lab == 0 for img, lab in zip(everything, labels, strict=True))


def test_png_train_and_test_folders_and_colour(tmp_path):
    write_pngs(tmp_path / "d" / "train", mode="RGB")
    write_pngs(tmp_path / "d" / "test", classes=("dog",), per_class=2, mode="RGB")
    src = load_data(tmp_path / "d")
    assert src.train().input_shape == (4, 6, 3) and len(src.train()) == 10 and len(src.test()) == 2
    assert set(src.test().y) == {1} and not src.notes  # dog keeps its training index


@pytest.mark.parametrize("problem", ["ragged", "mixed", "empty", "other file", "not png", "unknown class"])
def test_bad_png_folders(tmp_path, problem):
    root = tmp_path / "d"
    write_pngs(root)
    if problem == "ragged":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "cat" / "9.png")
        match = "differ in size or kind"
    elif problem == "mixed":
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(root / "dog" / "9.png")
        match = "greyscale.*colour|colour.*greyscale"
    elif problem == "empty":
        (root / "bird").mkdir()
        match = "class folder .*bird has no .png images"
    elif problem == "other file":
        (root / "cat" / "notes.txt").write_text("hi")
        match = "other than .png files: notes.txt"
    elif problem == "not png":
        Image.fromarray(np.zeros((4, 6), np.uint8)).save(root / "cat" / "x.png", format="BMP")
        match = "not a PNG"
    else:
        write_pngs(root / "train")
        write_pngs(root / "test", classes=("fish",))
        match = "class folders the training split lacks: fish"
    with pytest.raises(DataError, match=match):
        load_data(root)


def test_a_folder_without_class_folders(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="neither IDX files .* nor class folders"):
        load_data(tmp_path)


# -- arrays and torch datasets --------------------------------------------------------


def test_arrays_declared_and_fitted():
    x = np.arange(40, dtype=np.float64).reshape(10, 2, 2)
    src = from_arrays(x, np.arange(10) % 3, normalization=Normalization.declared(0, 40))
    assert src.train().normalization.rule == "declared" and len(src.test()) == 2
    fitted = from_arrays(x, np.arange(10) % 3).train()
    assert fitted.normalization.rule == "minmax"
    with pytest.raises(DataError, match="together"):
        from_arrays(x, np.arange(10), x_test=x)


def test_torch_datasets():
    import torch
    from torch.utils.data import TensorDataset

    x = torch.rand(12, 3, 2)
    train = TensorDataset(x, torch.arange(12) % 4)
    src = from_torch(train, TensorDataset(x[:3], torch.tensor([0, 1, 2])), name="tensors")
    assert len(src.train()) == 12 and src.test().y.tolist() == [0, 1, 2] and src.train().input_shape == (3, 2)
    np.testing.assert_array_equal(src.train_raw.x, x.numpy())

    class Ragged(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(2 + i), 0

    with pytest.raises(DataError, match="several shapes"):
        from_torch(Ragged())
    with pytest.raises(DataError, match="is empty"):
        from_torch(TensorDataset(torch.zeros(0, 2), torch.zeros(0)))


def test_loading_data_loads_no_torch():
    import subprocess
    import sys

    code = f"import sys, mcuflow.data as d; d.load_data({str(DIGITS)!r}).test().x; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
