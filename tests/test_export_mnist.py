"""THE parity test: the host-compiled generated C against the numpy reference on all 10,000 MNIST
test images (one C process, binary files in and out), and int8 vs float end-to-end accuracy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_tools

import mcuflow
from mcuflow import reference
from mcuflow.export import export
from mcuflow.manifest import load_model

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import assert_parity, build_harness, mnist, paper_checkpoint, run_harness  # noqa: E402

THRESHOLD = 0.9


@pytest.fixture(scope="module")
def exported(mnist_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mnist_export")
    ckpt = paper_checkpoint(mnist_dir, tmp / "paper.pt")
    res = export(ckpt, tmp / "lib", data_dir=mnist_dir, exit_threshold=THRESHOLD)
    return ckpt, res, tmp


@pytest.mark.slow
def test_generated_c_matches_reference_on_all_mnist_test_images(exported, mnist_dir):
    require_tools("gcc")
    ckpt, res, tmp = exported
    test = mnist(mnist_dir, "test")
    x = reference.pixels_to_input(test.images)
    assert len(x) == 10_000
    exe = build_harness(res.directory, tmp / "harness")
    out = run_harness(exe, x, 1, 10, 40, tmp)
    ref = reference.run(load_model(res.directory), x)
    assert 0 < ref.exited.sum() < len(x)  # both paths are exercised
    assert_parity(out, ref)
    # exit logits are compared for every sample here: the single exit is always evaluated
    np.testing.assert_array_equal(out["logits"][:, 0], ref.exit_logits[0])


@pytest.mark.slow
def test_int8_end_to_end_accuracy_is_close_to_float(exported, mnist_dir):
    ckpt, res, _ = exported
    test = mnist(mnist_dir, "test")
    ref = reference.run(res.model, reference.pixels_to_input(test.images))
    inter = reference.dequantize(ref.intermediate, res.model.intermediate_scale, res.model.intermediate_zp)
    tail = reference.tail_forward(res.directory / "tail.npz", inter).argmax(1)
    int8_pred = np.where(ref.exited.astype(bool), ref.label, tail)

    model = mcuflow.load(ckpt)
    xf = torch.from_numpy(test.images.reshape(-1, 784).astype(np.float32) / 255.0)
    with torch.no_grad():
        exits, final = model(xf)
    conf, lab = torch.softmax(exits[0], 1).max(1)
    float_pred = torch.where(conf >= THRESHOLD, lab, final.argmax(1)).numpy()
    acc_int8 = float((int8_pred == test.labels).mean())
    acc_float = float((float_pred == test.labels).mean())
    assert acc_float > 0.8  # the quick model is trained enough for this comparison to mean something
    assert abs(acc_int8 - acc_float) <= 0.005, (acc_int8, acc_float)
    # the device's exit decisions track the float softmax test closely
    assert np.mean(ref.exited.astype(bool) == (conf >= THRESHOLD).numpy()) > 0.98
