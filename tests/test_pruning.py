"""Pruning and narrow codes end to end in Python: export settings, the reference's link model,
and fine-tuning plumbing (tier 1; small data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuflow import reference
from mcuflow.codec import compress as C
from mcuflow.codec import encodings as E
from mcuflow.errors import ConfigError
from mcuflow.link import messages as m
from mcuflow.link.messages import offload_wire_bytes
from mcuflow.manifest import link_config as link_from_export
from mcuflow.passes.link_compression import resolve_link

EXAMPLE = "examples/paper_sparse.pt"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-128, 127), min_size=1, max_size=60),
    st.integers(-128, 127),
    st.integers(0, 255),
    st.integers(0, 60),
)
def test_prune_mask_is_threshold_then_topk(values, zp, threshold, topk):
    q = np.array(values, dtype=np.int8)
    topk = min(topk, q.size)
    keep = C.prune_mask(q, zp, threshold, topk)
    mag = np.abs(q.astype(int) - zp)
    assert not keep[mag <= threshold].any()
    survivors = (mag > threshold).sum()
    assert keep.sum() == (min(topk, survivors) if topk else survivors)
    if topk and keep.any() and (~keep & (mag > threshold)).any():
        # nothing dropped is larger than anything kept; equal ones are dropped only after kept ones
        dropped = np.flatnonzero(~keep & (mag > threshold))
        kept = np.flatnonzero(keep)
        assert mag[dropped].max() <= mag[kept].min()
        ties = [d for d in dropped if mag[d] == mag[kept].min()]
        assert all(d > kept[mag[kept] == mag[d]].max() for d in ties)


def test_identity_config_leaves_the_tensor_alone():
    q = np.random.default_rng(0).integers(-128, 128, (50, 40)).astype(np.int8)
    link = reference.link_offload(q, 0.5, -128, C.LinkConfig())
    np.testing.assert_array_equal(link.codes, q)
    assert link.zero_point == -128 and link.scale == 0.5 and (link.body_bytes <= 40).all()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from mcuflow.export import export

    d = tmp_path_factory.mktemp("prune")
    calib = np.random.default_rng(1).random((200, 784))  # a fast, data-independent calibration
    dense = export(EXAMPLE, d / "dense", calibration=calib)
    pruned = export(EXAMPLE, d / "k6b4", calibration=calib, prune_topk=6, link_bits=4)
    return dense, pruned


def test_export_writes_the_link_settings(exports):
    dense, pruned = exports
    assert dense.manifest.link.bits == 8 and dense.manifest.link.topk == 0
    cfg = link_from_export(pruned.directory)
    assert (cfg.topk, cfg.bits, cfg.code_zp) == (6, 4, 0) and 0 < cfg.shift <= 8
    header = (pruned.directory / "mcuflow_link_config.h").read_text()
    assert "#define MCUFLOW_LINK_PRUNE_TOPK      6u" in header and "#define MCUFLOW_LINK_BITS            4u" in header
    assert f"#define MCUFLOW_LINK_SHIFT           {cfg.shift}u" in header
    meta = json.loads((pruned.directory / "export.json").read_text())
    assert "mcuflow_link_config.h" in meta["files"]
    assert meta["link"]["scale"] == pytest.approx(meta["quantization"]["intermediate"]["scale"] * 2**cfg.shift)


def test_reference_link_offload_matches_the_wire_format(exports):
    """What the reference predicts is what an OFFLOAD with the device's header decodes to."""
    _, pruned = exports
    q = pruned.model
    cfg = link_from_export(pruned.directory)
    x = np.random.default_rng(2).integers(-128, 128, (64, 784)).astype(np.int8)
    ref = reference.run(q, x)
    link = reference.link_offload(ref.intermediate, q.intermediate_scale, q.intermediate_zp, cfg)
    assert ((link.codes != link.zero_point).sum(axis=1) <= 6).all()
    assert link.codes.min() >= 0 and link.codes.max() <= 15
    for i in range(len(x)):
        enc, body = E.encode_best(link.codes[i], 4, link.zero_point)
        assert enc == link.encoding[i] and len(body) == link.body_bytes[i]
        msg = m.Offload(enc, 4, link.zero_point, link.scale, 0, link.codes[i])
        back = m.Offload.parse(msg.pack(), expected_len=40)
        np.testing.assert_allclose(back.dequantize(), link.dequantize()[i])
        assert offload_wire_bytes(len(body)) == len(body) + 26  # a short frame: 6 + 16 + 2 raw, COBS + delimiter


def test_resolve_link_rejects_bad_settings(exports):
    _, pruned = exports
    with pytest.raises(ConfigError):
        resolve_link(pruned.model, None, bits=8, shift=2)
    with pytest.raises(ConfigError):
        resolve_link(pruned.model, None, topk=41)
    with pytest.raises(ConfigError):
        resolve_link(pruned.model, None, bits=1)


def test_export_rejects_bad_link_options_before_work(tmp_path):
    from mcuflow.export import export

    with pytest.raises(ConfigError):
        export(EXAMPLE, tmp_path / "x", link_bits=9)
    assert not (tmp_path / "x").exists()


def test_train_finetune_link_writes_a_checkpoint_for_the_settings(tmp_path, mnist_dir):
    import mcuflow
    from mcuflow.checkpoint import read_payload
    from mcuflow.cli.main import main

    out = tmp_path / "ft.pt"
    args = ["train", "--finetune-link", EXAMPLE, "--out", str(out), "--data-dir", str(mnist_dir), "--limit", "1500"]
    args += ["--prune-topk", "8", "--link-bits", "4", "--head-epochs", "1", "--tail-epochs", "1", "--no-progress"]
    assert main(args) in (0, None)
    meta = json.loads(read_payload(out)["meta"])
    assert meta["link"]["topk"] == 8 and meta["link"]["bits"] == 4 and meta["finetuned_from"] == EXAMPLE
    assert [h["stage"] for h in meta["finetune_history"]] == ["head", "tail"]
    before, after = mcuflow.load(EXAMPLE), mcuflow.load(out)
    assert mcuflow.model_hash(before) != mcuflow.model_hash(after)
    changed = [
        k
        for k, v in before.state_dict().items()
        if v.dtype.is_floating_point and not (v == after.state_dict()[k]).all()
    ]
    assert any(k.startswith("head") for k in changed) and any(k.startswith("tail") for k in changed)


def test_finetune_link_requires_an_output(mnist_dir, capsys):
    from mcuflow.cli.main import main

    assert main(["train", "--finetune-link", EXAMPLE, "--data-dir", str(mnist_dir)]) != 0
    assert "--out" in capsys.readouterr().err
