"""ONNX front end: Gemm / MatMul+Add / Relu graphs of a head and exits, built with onnx.helper."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import require_tools
from onnx import TensorProto, helper, numpy_helper

from mcuflow.errors import ConfigError
from mcuflow.export import compile_graph, export
from mcuflow.frontend import graph_from_onnx
from mcuflow.passes import fuse_relu

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import assert_parity, c_vs_reference  # noqa: E402


def build_onnx(path: Path, rng, sparse_first: bool = True, extra_node=None) -> dict:
    """Head: Gemm(transB=1) 30->12 + Relu, MatMul+Add 12->8 + Relu; exit 0 on the first Relu (Gemm 12->5),
    exit 1 on the head output (MatMul+Add 8->5). Outputs: head, exit0, exit1."""
    w1 = rng.normal(0, 0.3, (12, 30)).astype(np.float32)
    if sparse_first:  # three nonzeros per row: becomes a fixed in-degree sparse layer
        mask = np.zeros_like(w1, dtype=bool)
        for r in range(12):
            mask[r, rng.choice(30, 3, replace=False)] = True
        w1 = np.where(mask, w1, 0).astype(np.float32)
    b1 = rng.normal(0, 0.1, 12).astype(np.float32)
    w2 = rng.normal(0, 0.3, (12, 8)).astype(np.float32)  # MatMul weights are (in, out)
    b2 = rng.normal(0, 0.1, 8).astype(np.float32)
    we0 = rng.normal(0, 0.3, (5, 12)).astype(np.float32)
    be0 = rng.normal(0, 0.1, 5).astype(np.float32)
    we1 = rng.normal(0, 0.3, (8, 5)).astype(np.float32)
    be1 = rng.normal(0, 0.1, 5).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in (
            (w1, "w1"),
            (b1, "b1"),
            (w2, "w2"),
            (b2, "b2"),
            (we0, "we0"),
            (be0, "be0"),
            (we1, "we1"),
            (be1, "be1"),
        )
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["g1"], name="fc1", transB=1),
        helper.make_node("Relu", ["g1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "b2"], ["a2"], name="fc2_bias"),
        helper.make_node("Relu", ["a2"], ["head_out"], name="relu2"),
        helper.make_node("Gemm", ["r1", "we0", "be0"], ["exit0"], name="exit0_fc", transB=1),
        helper.make_node("MatMul", ["head_out", "we1"], ["me1"], name="exit1_fc"),
        helper.make_node("Add", ["me1", "be1"], ["exit1"], name="exit1_bias"),
    ]
    if extra_node is not None:
        nodes.append(extra_node)
    graph = helper.make_graph(
        nodes,
        "head_and_exits",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 30])],
        [
            helper.make_tensor_value_info("head_out", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("exit0", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("exit1", TensorProto.FLOAT, ["N", 5]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return dict(w1=w1, b1=b1, w2=w2, b2=b2, we0=we0, be0=be0, we1=we1, be1=be1)


def numpy_forward(p: dict, x: np.ndarray):
    r1 = np.maximum(x @ p["w1"].T + p["b1"], 0)
    head = np.maximum(r1 @ p["w2"] + p["b2"], 0)
    return head, r1 @ p["we0"].T + p["be0"], head @ p["we1"] + p["be1"]


def test_onnx_graph_structure_and_float_forward(tmp_path):
    rng = np.random.default_rng(0)
    p = build_onnx(tmp_path / "m.onnx", rng)
    g = graph_from_onnx(tmp_path / "m.onnx")
    assert g.source == "onnx" and g.input_len == 30 and g.num_classes == 5 and len(g.exits) == 2
    assert g.head[0].pattern == "explicit" and g.head[0].degree == 3  # zero weights became a sparse layer
    assert [e.at for e in g.exits] == [2, 4]  # after relu1, after relu2
    x = rng.uniform(0, 1, (16, 30))
    logits, head, _ = fuse_relu(g).forward(x)
    want_head, want0, want1 = numpy_forward(p, x)
    np.testing.assert_allclose(head, want_head, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits[0], want0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits[1], want1, rtol=1e-5, atol=1e-5)


def test_onnx_export_is_bit_exact_in_c(tmp_path):
    require_tools("gcc")
    rng = np.random.default_rng(1)
    build_onnx(tmp_path / "m.onnx", rng)
    calib = rng.uniform(0, 1, (200, 30))
    res = export(tmp_path / "m.onnx", tmp_path / "out", calibration=calib, exit_threshold=0.6)
    assert (tmp_path / "out" / "mcuflow_model.h").exists() and not (tmp_path / "out" / "tail.onnx").exists()
    assert res.manifest.head[0].format in ("fixed", "csr", "dense")
    x = rng.integers(-128, 128, (400, 30)).astype(np.int8)
    out, ref = c_vs_reference(res.model, x, tmp_path)
    assert_parity(out, ref)


def test_onnx_unsupported_op_is_named(tmp_path):
    rng = np.random.default_rng(2)
    build_onnx(tmp_path / "bad.onnx", rng, extra_node=helper.make_node("Sigmoid", ["exit1"], ["s"], name="squash"))
    with pytest.raises(ConfigError, match=r"squash \(Sigmoid\)"):
        graph_from_onnx(tmp_path / "bad.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a readable ONNX"):
        graph_from_onnx(tmp_path / "junk.onnx")


def test_onnx_compiles_with_per_tensor_scales(tmp_path):
    rng = np.random.default_rng(3)
    build_onnx(tmp_path / "m.onnx", rng, sparse_first=False)
    g = graph_from_onnx(tmp_path / "m.onnx")
    q = compile_graph(g, rng.uniform(0, 1, (50, 30)), per_channel=False)
    assert q.head[0].packed.format == "dense"
    assert all((layer.w_scale == layer.w_scale[0]).all() for layer in q.all_layers())


@pytest.mark.parametrize("flatten", ["module", "view"])
def test_default_torch_exporter_with_an_nchw_input(flatten, tmp_path):
    """torch.onnx.export's default (dynamo) exporter, an (N, 1, 28, 28) input flattened by nn.Flatten or a view:
    the head compiles and the C matches the reference."""
    import torch
    from torch import nn

    require_tools("gcc")

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.flat, self.fc, self.exit = nn.Flatten(), nn.Linear(784, 16), nn.Linear(16, 10)

        def forward(self, x):
            x = self.flat(x) if flatten == "module" else x.reshape(x.shape[0], -1)
            h = torch.relu(self.fc(x))
            return h, self.exit(h)

    torch.manual_seed(0)
    path = tmp_path / "head.onnx"
    torch.onnx.export(Head().eval(), (torch.zeros(2, 1, 28, 28),), str(path), input_names=["x"])  # dynamo
    g = graph_from_onnx(path)
    assert g.input_len == 784 and len(g.exits) == 1
    rng = np.random.default_rng(0)
    q = compile_graph(g, rng.random((64, 784)), exit_threshold=0.3)
    out, ref = c_vs_reference(q, rng.integers(-128, 128, (100, 784)).astype(np.int8), tmp_path)
    assert_parity(out, ref)


def test_reshape_to_another_width_is_refused(tmp_path):
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 3, 4], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Reshape", ["h", "shape"], ["y"], name="odd")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, shape],
    )  # fmt: skip
    onnx.save(helper.make_model(graph), tmp_path / "odd.onnx")
    with pytest.raises(ConfigError, match=r"odd \(Reshape\) to \[-1, 3, 4\] is not supported"):
        graph_from_onnx(tmp_path / "odd.onnx")
