"""ONNX front end for convolutional heads: Conv / pooling / BatchNormalization / Clip graphs lower to the
float IR in HWC order and compute what the ONNX graph (here: the torch model it was exported from) does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.frontend import graph_from_onnx
from mcuflow.ir.graph import Conv2d, Shape


class _Head(nn.Module):
    """Outputs: the head (two conv blocks), an exit on the first block, an exit on the head output."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.BatchNorm2d(8), nn.ReLU6(), nn.MaxPool2d(2))
        self.b = nn.Sequential(nn.Conv2d(8, 16, 3, groups=8), nn.ReLU(), nn.AvgPool2d(2))
        self.e0 = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 10))
        self.e1 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        a = self.a(x)
        h = self.b(a)
        return h, self.e0(a), self.e1(h)


def test_exported_conv_model_lowers_and_matches(tmp_path):
    torch.manual_seed(0)
    model = _Head().eval()
    with torch.no_grad():
        model.a[1].running_mean.uniform_(-0.5, 0.5)
        model.a[1].running_var.uniform_(0.5, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.rand(1, 1, 28, 28), tmp_path / "m.onnx", dynamo=False, input_names=["x"],
                          output_names=["head", "e0", "e1"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    g = graph_from_onnx(tmp_path / "m.onnx")
    assert g.input_shape == Shape(28, 28, 1) and g.input_len == 784
    assert [n.kind for n in g.head] == ["conv2d", "maxpool2d", "conv2d", "relu", "avgpool2d"]
    assert g.head[0].act_max == 6.0 and g.head[2].pattern == "depthwise"
    x = torch.rand(6, 1, 28, 28)
    exits, head, _ = g.forward(x.reshape(6, -1).double().numpy())
    with torch.no_grad():
        th, t0, t1 = model(x)
    assert np.allclose(head, th.permute(0, 2, 3, 1).reshape(6, -1).numpy(), atol=1e-5)
    assert np.allclose(exits[0], t0.numpy(), atol=1e-5) and np.allclose(exits[1], t1.numpy(), atol=1e-5)


def _graph(tmp_path, nodes, inits, outputs=("y",)):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 6, 6])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(a, dtype=np.float32), k) for k, a in inits.items()],
    )
    path = tmp_path / "g.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    return path


def test_batchnorm_is_folded_into_the_conv(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4)
    gamma, beta, mean, var = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["bn"], name="bn", epsilon=1e-3),
        helper.make_node("Clip", ["bn", "lo", "hi"], ["y"], name="relu6"),
    ]
    inits = {"w": w, "b": b, "g": gamma, "be": beta, "m": mean, "v": var, "lo": [0.0], "hi": [6.0]}
    g = graph_from_onnx(_graph(tmp_path, nodes, inits))
    (conv,) = g.head
    assert isinstance(conv, Conv2d) and conv.relu and conv.act_max == 6.0 and conv.padding == (1, 1, 1, 1)
    x = rng.random((3, 36))
    with torch.no_grad():
        t = nn.functional.conv2d(torch.from_numpy(x).reshape(3, 1, 6, 6), torch.from_numpy(w), torch.from_numpy(b),
                                 padding=1)  # fmt: skip
        t = (t - torch.from_numpy(mean)[:, None, None]) / torch.sqrt(torch.from_numpy(var)[:, None, None] + 1e-3)
        t = (t * torch.from_numpy(gamma)[:, None, None] + torch.from_numpy(beta)[:, None, None]).clamp(0, 6)
    assert np.allclose(g.forward(x)[1], t.permute(0, 2, 3, 1).reshape(3, -1).numpy(), atol=1e-9)


@pytest.mark.parametrize(
    "extra,match",
    [
        (helper.make_node("Add", ["c", "c"], ["y"], name="residual"), r"residual \(Add\) adds two values, a residual connection"),
        (helper.make_node("MaxPool", ["c"], ["y"], name="mp", kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
         r"mp \(MaxPool\) has pads"),
        (helper.make_node("Sigmoid", ["c"], ["y"], name="sig"), r"sig \(Sigmoid\) is not supported"),
        (helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip"), r"clip \(Clip\) to \[0.0, 2.0\]"),
    ],
)  # fmt: skip
def test_unsupported_nodes_are_refused_by_name(tmp_path, extra, match):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), extra]
    inits = {"w": np.ones((2, 1, 3, 3)), "lo": [0.0], "hi": [2.0]}
    with pytest.raises(ConfigError, match=match):
        graph_from_onnx(_graph(tmp_path, nodes, inits))
