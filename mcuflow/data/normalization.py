"""How stored values become model inputs: ``x = (raw - shift) / divisor``, one pair per dataset.

The pair is fitted on the training data (or declared: MNIST's pixels/255), recorded in the
checkpoint's meta and applied unchanged to every later split, so calibration, HIL and the device see
the inputs the model was trained on. The division form (rather than ``raw * scale + offset``) keeps
MNIST bit-exact with what mcuflow always computed: ``p / 255`` in float64, and the same value rounded
once to float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mcuflow.errors import ConfigError, DataError

# The rules a user can ask for (``mcuflow train --normalize``); "declared" is what a loader declares
# (MNIST) or a user gives as numbers.
RULES = ("auto", "minmax", "meanstd", "none")
_CHUNK = 8192  # rows normalised at a time: the float64 step of 60,000 MNIST images would take 376 MB at once


@dataclass(frozen=True)
class Normalization:
    """``x = (raw - shift) / divisor``; ``rule`` says where the numbers came from."""

    shift: float
    divisor: float
    rule: str  # "declared", "minmax", "meanstd" or "none"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shift) and math.isfinite(self.divisor)) or self.divisor == 0:
            raise DataError(f"normalisation (x - {self.shift}) / {self.divisor} is not usable")

    @classmethod
    def identity(cls) -> Normalization:
        return cls(0.0, 1.0, "none")

    @classmethod
    def declared(cls, shift: float, divisor: float) -> Normalization:
        return cls(float(shift), float(divisor), "declared")

    @classmethod
    def fit(cls, raw: np.ndarray, rule: str, what: str = "the training data") -> Normalization:
        """The ``minmax`` ([0, 1] over ``raw``) or ``meanstd`` (zero mean, unit variance) pair of ``raw``."""
        a = np.asarray(raw)
        if a.size == 0:
            raise DataError(f"cannot fit a normalisation on {what}: it is empty")
        if rule == "none":
            return cls.identity()
        if rule == "minmax":
            lo, hi = float(a.min()), float(a.max())
            if hi == lo:
                raise DataError(f"every value of {what} is {lo:g}: a min/max normalisation needs two values")
            return cls(lo, hi - lo, "minmax")
        if rule == "meanstd":
            mean, std = float(a.mean(dtype=np.float64)), float(a.std(dtype=np.float64))
            if not std > 0:
                raise DataError(f"every value of {what} is {mean:g}: a mean/std normalisation needs spread")
            return cls(mean, std, "meanstd")
        raise ConfigError(f"unknown normalisation {rule!r}; choose one of {', '.join(RULES)} or SHIFT,DIVISOR")

    @classmethod
    def parse(cls, text: str) -> Normalization | str:
        """``--normalize``: a rule name (returned as is, to fit later) or ``SHIFT,DIVISOR`` (declared)."""
        t = text.strip().lower()
        if t in RULES:
            return t
        parts = t.split(",")
        try:
            shift, divisor = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(
                f"--normalize takes {', '.join(RULES)} or SHIFT,DIVISOR (x = (raw - SHIFT) / DIVISOR), got {text!r}"
            ) from None
        if divisor == 0 or not (math.isfinite(shift) and math.isfinite(divisor)):
            raise ConfigError(f"--normalize {text}: the divisor must be finite and not 0")
        return cls.declared(shift, divisor)

    def apply(self, raw: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """``raw`` normalised, computed in float64 and rounded once to ``dtype``."""
        a = np.asarray(raw)
        out = np.empty(a.shape, dtype=dtype)
        for i in range(0, max(len(a), 1), _CHUNK):
            out[i : i + _CHUNK] = (a[i : i + _CHUNK].astype(np.float64) - self.shift) / self.divisor
        return out

    def describe(self) -> str:
        how = {"declared": "declared", "minmax": "min/max of the training data", "meanstd": "mean/std of it"}
        if self.rule == "none":
            return "none (x = raw)"
        return f"x = (raw - {self.shift:g}) / {self.divisor:g} ({how.get(self.rule, self.rule)})"
