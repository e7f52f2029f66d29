"""Link-compression pass: turn the export options (--prune-threshold, --prune-topk, --link-bits,
--link-shift) into the :class:`~mcuflow.codec.compress.LinkConfig` of one quantised model; a narrow code
takes its shift from the calibration range of the head output."""

from __future__ import annotations

import struct

import numpy as np

from mcuflow.codec.compress import LinkConfig, auto_shift
from mcuflow.errors import ConfigError
from mcuflow.ir.quantized import QModel

SHIFT_PERCENTILE = 99.9  # of the calibration's q - zp, fitted by --link-shift auto


def resolve_link(
    q: QModel,
    calibration_intermediate: np.ndarray | None,
    *,
    threshold: int = 0,
    topk: int = 0,
    bits: int = 8,
    shift: int | None = None,
) -> LinkConfig:
    """The link settings for QModel ``q``. With ``bits`` < 8 and no ``shift``, the shift is the
    smallest that fits the calibration range of ``q - zero_point`` (its 0.1st to 99.9th
    percentile) into the codes; larger values clamp to the largest code."""
    zp = int(q.intermediate_zp)
    layer = q.intermediate
    d_min = int(layer.act_min) - zp if q.head else -255  # ReLU: act_min == zp, the codes need no sign
    if bits < 8:
        if calibration_intermediate is not None and len(calibration_intermediate):
            # A percentile, not the maximum: min/max calibration puts one outlier at the top of the int8
            # range, and fitting it would waste most of a narrow code's levels (the rest clamp).
            d = np.asarray(calibration_intermediate, dtype=np.int32) - zp
            d_max = int(np.ceil(np.percentile(d, SHIFT_PERCENTILE)))
            d_min = min(d_min, int(np.floor(np.percentile(d, 100 - SHIFT_PERCENTILE)))) if d_min < 0 else 0
        else:
            d_max = int(layer.act_max) - zp if q.head else 255
        auto, code_zp = auto_shift(bits, max(d_max, 0), min(d_min, 0))
        shift = auto if shift is None else shift
    else:
        code_zp = 0
        if shift not in (None, 0):
            raise ConfigError("--link-shift applies to --link-bits below 8")
        shift = 0
    cfg = LinkConfig(threshold, topk, bits, shift, code_zp).validate(q.intermediate_len)
    scale_bits = struct.unpack("<I", struct.pack("<f", q.intermediate_scale))[0]
    exponent = scale_bits >> 23 & 0xFF
    if not 0 < exponent + cfg.shift < 255 or exponent == 0:
        raise ConfigError(f"the intermediate scale {q.intermediate_scale} times 2**{cfg.shift} is not a normal float32")
    return cfg
