"""read_npz and load_model turn every kind of damaged archive into one clear mcuflow error."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from conftest import ROOT

from mcuflow.errors import ConfigError, DataError
from mcuflow.manifest import load_model
from mcuflow.npz import read_npz


def _archive(path):
    np.savez_compressed(path, a=np.arange(2000, dtype=np.int32), b=np.ones((40, 10), np.float32))
    return path.read_bytes()


def test_round_trip(tmp_path):
    _archive(tmp_path / "t.npz")
    z = read_npz(tmp_path / "t.npz", "test data")
    assert z["a"].sum() == sum(range(2000)) and z["b"].shape == (40, 10)


def test_truncated_and_mutated_archives_raise_the_given_error(tmp_path):
    data = _archive(tmp_path / "t.npz")
    bad = tmp_path / "bad.npz"
    rng = random.Random(3)
    for i in range(200):
        if i % 2:
            blob = data[: rng.randrange(len(data))]
        else:
            m = bytearray(data)
            for _ in range(4):
                m[rng.randrange(len(m))] ^= rng.randrange(1, 256)
            blob = bytes(m)
        bad.write_bytes(blob)
        with pytest.raises(DataError, match="cannot read the widgets"):
            read_npz(bad, "the widgets", DataError)


def test_npy_missing_and_pickled(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ConfigError, match="single .npy"):
        read_npz(tmp_path / "one.npy", "x")
    with pytest.raises(ConfigError, match="absent"):
        read_npz(tmp_path / "absent.npz", "x")
    np.savez(tmp_path / "obj.npz", o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError, match="pickle"):
        read_npz(tmp_path / "obj.npz", "x")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from mcuflow.cli import main

    d = tmp_path_factory.mktemp("npz") / "export"
    assert (
        main(["export", str(ROOT / "examples" / "paper_sparse.pt"), "-o", str(d), "--calibration-samples", "50"]) == 0
    )
    return d


def test_load_export_with_a_damaged_weights_file(export_dir, tmp_path):
    copy = shutil.copytree(export_dir, tmp_path / "e")
    assert load_model(copy).head  # intact copy loads
    data = (copy / "quantized.npz").read_bytes()
    (copy / "quantized.npz").write_bytes(data[:-100])
    with pytest.raises(ConfigError, match="quantised weights"):
        load_model(copy)


def test_load_export_with_a_member_or_key_missing(export_dir, tmp_path):
    copy = shutil.copytree(export_dir, tmp_path / "e")
    z = dict(np.load(copy / "quantized.npz"))
    z.pop("head0.weight")
    np.savez(copy / "quantized.npz", **z)
    with pytest.raises(ConfigError, match="head0.weight"):
        load_model(copy)
    meta = json.loads((export_dir / "export.json").read_text())
    del meta["quantization"]
    (copy / "export.json").write_text(json.dumps(meta))
    shutil.copy(export_dir / "quantized.npz", copy / "quantized.npz")
    with pytest.raises(ConfigError, match="quantization"):
        load_model(copy)
