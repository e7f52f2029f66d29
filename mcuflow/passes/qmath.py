"""The arithmetic of post-training quantisation that every layer kind shares (``passes.quantize``,
``passes.quantize_conv``): activation ranges, weight scales and the Q31 requantisation multiplier."""

from __future__ import annotations

import math

import numpy as np

from mcuflow.errors import ConfigError

INT32_MAX = 2**31 - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """``m ~= mult * 2**-rshift`` with mult in [2**30, 2**31) and 1 <= rshift <= 62."""
    if not m > 0 or not math.isfinite(m):
        raise ConfigError(f"cannot quantise the requantisation multiplier {m}")
    frac, e = math.frexp(m)
    mult = round(frac * 2**31)
    if mult == 2**31:
        mult, e = mult // 2, e + 1
    rshift = 31 - e
    if rshift < 1:
        raise ConfigError(f"requantisation multiplier {m:.3g} is too large (>= 2**30): check the activation ranges")
    if rshift > 62:  # a vanishing multiplier: keep 62 bits of shift, the product still rounds correctly
        mult, rshift = round(m * 2.0**62), 62
    return int(mult), int(rshift)


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(0.0, float(lo)), max(0.0, float(hi))
    if hi - lo < 1e-12:
        hi = lo + 1e-6  # a constant-zero activation: any scale works, keep it finite
    scale = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


def weight_scales(w: np.ndarray, per_channel: bool) -> np.ndarray:
    amax = np.abs(w).max(axis=1) if per_channel else np.full(w.shape[0], np.abs(w).max() if w.size else 0.0)
    # An all-zero row (or tensor) quantises to zeros with any scale; 1.0 keeps the multiplier sane.
    return np.where(amax > 0, amax / 127.0, 1.0)
