"""``mcuflow train --finetune-link --tail-hidden``: a dense host tail replacing the sparse one,
through checkpoint, export (tail.npz, tail.onnx) and the numpy tail (tier 1; small data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcuflow.errors import ConfigError
from mcuflow.nn.config import ModelConfig, build_model, paper_config

EXAMPLE = "examples/paper_sparse.pt"


def test_tail_hidden_builds_a_dense_tail_and_round_trips_the_config():
    cfg = paper_config(tail_hidden=[24, 16])
    tail = build_model(cfg).tail
    linears = [m for m in tail if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(40, 24), (24, 16), (16, 10)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in tail) == 2
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # configs without one serialise as before, so old checkpoints keep their model hash
    assert "tail_hidden" not in paper_config().to_dict()
    with pytest.raises(ConfigError):
        paper_config(tail_hidden=[8, 0])


def test_finetune_link_with_tail_hidden_saves_loads_and_exports(tmp_path, mnist_dir):
    import mcuflow
    from mcuflow.cli.main import main
    from mcuflow.export import export
    from mcuflow.reference import tail_forward

    out = tmp_path / "ft.pt"
    args = ["train", "--finetune-link", EXAMPLE, "--out", str(out), "--data-dir", str(mnist_dir), "--limit", "300"]
    args += ["--link-bits", "2", "--head-epochs", "1", "--tail-epochs", "1", "--tail-hidden", "32", "--no-progress"]
    assert main(args) in (0, None)
    model = mcuflow.load(out)
    assert model.config.tail_hidden == [32]
    assert [tuple(p.shape) for p in model.tail.parameters()] == [(32, 40), (32,), (10, 32), (10,)]
    before = mcuflow.load(EXAMPLE)
    assert not torch.equal(before.head[1].weight, model.head[1].weight)  # stage 1 trained the head too

    res = export(out, tmp_path / "export", data_dir=mnist_dir, link_bits=2, link_shift=6)
    assert (tmp_path / "export" / "tail.onnx").is_file()
    z = dict(np.load(tmp_path / "export" / "tail.npz"))
    assert int(z["n_layers"]) == 2
    assert (z["0.columns"] == np.arange(40)).all() and z["0.columns"].shape == (32, 40)
    x = np.random.default_rng(0).random((16, res.model.intermediate_len), dtype=np.float32)
    with torch.no_grad():
        expected = model.run_tail(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(tail_forward(z, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", ["0", "16,-1", "x"])
def test_bad_tail_hidden_fails_before_writing(tmp_path, mnist_dir, capsys, bad):
    from mcuflow.cli.main import main

    out = tmp_path / "ft.pt"
    args = ["train", "--finetune-link", EXAMPLE, "--out", str(out), "--data-dir", str(mnist_dir)]
    assert main([*args, "--tail-hidden", bad, "--no-progress"]) != 0
    assert "--tail-hidden" in capsys.readouterr().err
    assert not out.exists()


def test_train_from_scratch_with_a_dense_tail(tmp_path, mnist_dir):
    import mcuflow
    from mcuflow.cli.main import main

    out = tmp_path / "m.pt"
    args = ["train", "--out", str(out), "--data-dir", str(mnist_dir), "--limit", "200", "--test-limit", "100"]
    assert main([*args, "--epochs", "1", "--tail-hidden", "none", "--no-progress"]) in (0, None)
    model = mcuflow.load(out)
    assert model.config.tail_hidden == []
    assert [tuple(p.shape) for p in model.tail.parameters()] == [(10, 40), (10,)]
