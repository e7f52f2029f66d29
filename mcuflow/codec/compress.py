"""The link compression the device applies to the head output before an OFFLOAD (docs/protocol.md,
"Link compression"): pruning, top-k and narrow codes, as a numpy model of what the firmware does.

Every rule here has a twin in ``firmware/app/serve.c``; tests/test_pruning.py holds the two equal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mcuflow.codec.encodings import MAX_BITS, MIN_BITS
from mcuflow.errors import ConfigError

FLOAT32_BYTES = 4  # the paper's baseline sends the intermediate as dense float32


@dataclass(frozen=True)
class LinkConfig:
    """What the device does to the head output before an OFFLOAD (set at export time).

    With ``d = q - zero_point`` (the integer distance from the real value 0):

    1. ``threshold`` T: elements with ``|d| <= T`` become 0 (T = 0: nothing is pruned).
    2. ``topk`` K: of the elements still non-zero, only the K with the largest ``|d|``
       stay (ties: lower index first); K = 0 keeps all.
    3. ``bits`` B < 8: each ``d`` becomes the unsigned B-bit code
       ``clamp(((d + 2**(shift-1)) >> shift) + code_zp, 0, 2**B - 1)`` (arithmetic shift;
       shift 0: no rounding term), sent with zero point ``code_zp`` and scale
       ``scale * 2**shift``. ``code_zp`` is 0 for a non-negative head output (ReLU),
       else ``2**(B-1)``. B = 8 sends the pruned int8 ``q`` itself.
    """

    threshold: int = 0
    topk: int = 0
    bits: int = 8
    shift: int = 0
    code_zp: int = 0

    def validate(self, n: int | None = None) -> LinkConfig:
        if not 0 <= self.threshold <= 255:
            raise ConfigError(f"--prune-threshold must be in 0..255 (an int8 distance), got {self.threshold}")
        if self.topk < 0 or (n is not None and self.topk > n):
            raise ConfigError(f"--prune-topk must be in 0..{n if n is not None else 'n'}, got {self.topk}")
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ConfigError(f"--link-bits must be in {MIN_BITS}..{MAX_BITS}, got {self.bits}")
        if self.bits == 8 and (self.shift or self.code_zp):
            raise ConfigError("8-bit link values are the int8 head output itself: no shift, no code zero point")
        if not 0 <= self.shift <= 8:
            raise ConfigError(f"--link-shift must be in 0..8, got {self.shift}")
        if self.code_zp not in (0, 1 << (self.bits - 1)) or (self.bits == 8 and self.code_zp):
            raise ConfigError(f"code zero point {self.code_zp} must be 0 or 2**(bits-1)")
        return self

    @property
    def is_identity(self) -> bool:
        return self.threshold == 0 and self.topk == 0 and self.bits == 8

    def as_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        parts = [f"T{self.threshold}" if self.threshold else "", f"k{self.topk}" if self.topk else ""]
        parts.append(f"{self.bits}b" + (f">>{self.shift}" if self.bits < 8 else ""))
        return " ".join(p for p in parts if p)


def auto_shift(bits: int, d_max: int, d_min: int = 0) -> tuple[int, int]:
    """(shift, code_zp) so that the calibration range ``d_min..d_max`` of ``q - zp`` fits ``bits``-bit codes."""
    if bits >= 8:
        return 0, 0
    code_zp = 0 if d_min >= 0 else 1 << (bits - 1)
    top, bottom = (1 << bits) - 1 - code_zp, -code_zp
    for s in range(0, 9):
        half = (1 << s) >> 1
        if (d_max + half) >> s <= top and (d_min + half) >> s >= bottom:
            return s, code_zp
    return 8, code_zp


def prune_mask(q: np.ndarray, zero_point: int, threshold: int = 0, topk: int = 0) -> np.ndarray:
    """Which elements of int8 ``q`` (..., n) survive pruning (see :class:`LinkConfig`)."""
    d = np.asarray(q).astype(np.int32) - np.int32(zero_point)
    mag = np.abs(d)
    keep = mag > threshold
    if topk:
        m2 = np.where(keep, mag, 0).reshape(-1, mag.shape[-1])
        order = np.argsort(-m2, axis=1, kind="stable")  # descending magnitude, lower index first on ties
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(m2.shape[1])[None, :].repeat(len(m2), 0), axis=1)
        keep &= (rank < topk).reshape(mag.shape)
    return keep


def link_codes(q: np.ndarray, zero_point: int, cfg: LinkConfig) -> tuple[np.ndarray, int]:
    """The codes the device sends for int8 head outputs ``q`` (..., n), and their zero point (the fill).

    B = 8: int8 codes (the pruned ``q``); B < 8: unsigned codes in 0..2**B-1, returned as int8.
    """
    q = np.asarray(q, dtype=np.int8)
    keep = prune_mask(q, zero_point, cfg.threshold, cfg.topk)
    if cfg.bits == 8:
        return np.where(keep, q, np.int8(zero_point)).astype(np.int8), int(zero_point)
    d = np.where(keep, q.astype(np.int32) - np.int32(zero_point), 0)
    if cfg.shift:
        d = (d + (1 << (cfg.shift - 1))) >> cfg.shift
    codes = np.clip(d + cfg.code_zp, 0, (1 << cfg.bits) - 1)
    return codes.astype(np.int8), cfg.code_zp


def link_scale(scale: float, cfg: LinkConfig) -> float:
    """The scale an OFFLOAD with ``cfg`` carries (exact: a power-of-two multiple, as float32)."""
    return float(np.float32(scale) * np.float32(2.0**cfg.shift)) if cfg.bits < 8 else float(np.float32(scale))
