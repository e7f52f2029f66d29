"""Quantisation pass: multipliers, scales, zero points, biases, edge cases."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuflow import reference
from mcuflow.errors import ConfigError
from mcuflow.export import compile_graph
from mcuflow.passes.quantize import activation_params, exit_lut, quantize_multiplier, threshold_q15, weight_scales

sys.path.insert(0, str(Path(__file__).parent))
from c.compiler_support import chain_graph  # noqa: E402


@given(st.floats(min_value=1e-12, max_value=1e8, allow_nan=False))
def test_quantize_multiplier_is_accurate(m):
    mult, rshift = quantize_multiplier(m)
    assert 1 <= rshift <= 62
    assert 0 < mult < 2**31
    if rshift < 62:
        assert mult >= 2**30
        assert abs(mult * 2.0**-rshift - m) / m <= 2.0**-30
    else:
        assert abs(mult * 2.0**-rshift - m) <= 2.0**-62


def test_quantize_multiplier_rejects_nonsense():
    for bad in (0.0, -1.0, math.inf, 2.0**31):
        with pytest.raises(ConfigError):
            quantize_multiplier(bad)


def test_requantize_rounds_half_up_with_arithmetic_shift():
    acc = np.array([5, -5, 6, -6, 7, -7])
    # multiplier 0.5 exactly: 2**30 * 2**-31
    out = reference.requantize(acc, np.full(6, 2**30), np.full(6, 31))
    np.testing.assert_array_equal(out, [3, -2, 3, -3, 4, -3])  # floor(x/2 + 1/2)


def test_input_quantisation_is_pixel_minus_128():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
    q = reference.pixels_to_input(pixels)
    np.testing.assert_array_equal(q.astype(int).ravel(), np.arange(256) - 128)
    np.testing.assert_array_equal(reference.quantize_input(np.arange(256) / 255.0), q.ravel())


def test_activation_params():
    s, zp = activation_params(0.0, 2.55)
    assert zp == -128 and s == pytest.approx(0.01)
    s, zp = activation_params(-1.0, 1.0)
    assert zp in (-1, 0) and s == pytest.approx(2 / 255)
    s, zp = activation_params(3.0, 5.0)  # range always includes zero
    assert zp == -128
    s, zp = activation_params(0.0, 0.0)  # constant zero: finite scale
    assert s > 0 and math.isfinite(s)


def test_per_row_and_per_tensor_scales():
    w = np.array([[1.0, -2.0], [0.1, 0.05], [0.0, 0.0]])
    per_row = weight_scales(w, True)
    np.testing.assert_allclose(per_row, [2 / 127, 0.1 / 127, 1.0])
    per_tensor = weight_scales(w, False)
    np.testing.assert_allclose(per_tensor, [2 / 127] * 3)


def _graph_and_data(seed=0):
    g = chain_graph([20, 10, 6], [2, 3], exits=[(2, [])], seed=seed, num_classes=5)
    rng = np.random.default_rng(seed)
    return g, rng.uniform(0, 1, (64, 20))


def test_per_row_is_at_least_as_accurate_as_per_tensor():
    g, x = _graph_and_data()
    g.head[0].weight[0] *= 50  # one row with much larger weights than the rest
    errs = {}
    for per_channel in (True, False):
        q = compile_graph(g, x, per_channel=per_channel)
        layer = q.head[0]
        deq = layer.weight * layer.w_scale[:, None]
        errs[per_channel] = np.abs(deq - g.head[0].weight).max(axis=1)[1:].max()
        if not per_channel:
            assert np.all(layer.w_scale == layer.w_scale[0])
    assert errs[True] < errs[False]


def test_all_zero_weights_give_a_constant_output():
    g, x = _graph_and_data()
    g.head[0].weight[:] = 0.0
    q = compile_graph(g, x)
    layer = q.head[0]
    assert not layer.weight.any()
    assert np.all(layer.mult >= 2**30)
    # whatever the input, the layer outputs its quantised bias alone
    xs = np.random.default_rng(1).integers(-128, 128, (50, 20)).astype(np.int8)
    h0 = reference.linear(layer, xs)
    assert (h0 == h0[0]).all()
    want = np.clip(np.round(g.head[0].bias / layer.out_scale) + layer.out_zp, layer.act_min, 127)
    assert np.abs(h0[0].astype(int) - want).max() <= 1


def test_bias_saturation_is_counted_and_stays_in_the_accumulator_bound():
    g, x = _graph_and_data()
    g.head[0].bias[0] = 1e12  # far beyond int32 at any sane scale
    q = compile_graph(g, x)
    layer = q.head[0]
    assert layer.saturated_biases >= 1
    assert abs(int(layer.bias[0])) + layer.degree * 127 * 128 <= 2**31 - 1
    for v in (-128, 127):  # the extreme inputs stay inside int32 (the reference asserts it)
        out = reference.linear(layer, np.full((1, 20), v, np.int8))
        assert out.dtype == np.int8


def test_relu_output_zero_point_and_clamp():
    g, x = _graph_and_data()
    q = compile_graph(g, x)
    for layer in q.head:
        assert layer.relu and layer.out_zp == -128 and layer.act_min == -128
    exit_layer = q.exits[0].layers[-1]
    assert not exit_layer.relu and exit_layer.act_min == -128


def test_quantised_model_tracks_the_float_model():
    g, x = _graph_and_data()
    q = compile_graph(g, x)
    from mcuflow.passes import fuse_relu

    logits_f, head_f, _ = fuse_relu(g).forward(x)
    res = reference.run(q, reference.quantize_input(x))
    inter = reference.dequantize(res.intermediate, q.intermediate_scale, q.intermediate_zp)
    assert np.abs(inter - head_f).max() < 0.1 * np.abs(head_f).max() + 3 * q.intermediate_scale
    ex = q.exits[0].layers[-1]
    deq = reference.dequantize(res.exit_logits[0], ex.out_scale, ex.out_zp)
    assert np.abs(deq - logits_f[0]).max() < 0.1 * np.abs(logits_f[0]).max() + 3 * ex.out_scale


def test_exit_lut_and_threshold():
    lut = exit_lut(0.1)
    assert lut[0] == 32768 and lut.dtype == np.uint16
    assert np.all(np.diff(lut.astype(int)) <= 0)
    assert lut[10] == round(32768 * math.exp(-1.0))
    assert threshold_q15(1.0) == 32767 and threshold_q15(0.5) == 16384 and threshold_q15(1e-9) == 1
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ConfigError):
            threshold_q15(bad)


def test_calibration_shape_is_checked():
    g, _ = _graph_and_data()
    with pytest.raises(ConfigError, match="calibration data"):
        compile_graph(g, np.zeros((4, 19)))
