"""Packed weights: one layer's int8 weights in a storage format, with their exact byte cost.

Formats (``values`` is always int8, in the order the kernel consumes them):

* ``dense``: the full ``(n_out, n_in)`` matrix, zeros included; no indices.
* ``csr``: ``row_ptr`` (n_out + 1) and ``col_idx`` (nnz), each in the smallest unsigned type that fits.
* ``fixed``: fixed in-degree, so no row pointers; ``col_idx`` is ``(n_out, degree)``.
* ``index_free``: the closed-form structured pattern; the device regenerates the columns from
  ``(n_in, degree, p, s)``, so only the values are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMATS = ("dense", "csr", "fixed", "index_free")

_UNSIGNED = ((np.uint8, "uint8_t"), (np.uint16, "uint16_t"), (np.uint32, "uint32_t"))


def smallest_unsigned(max_value: int) -> np.dtype:
    """The narrowest unsigned integer dtype holding ``0..max_value``."""
    for dtype, _ in _UNSIGNED:
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"index {max_value} does not fit in 32 bits")


def c_type(dtype: np.dtype) -> str:
    return {np.dtype(d): name for d, name in _UNSIGNED}[np.dtype(dtype)]


@dataclass
class PackedWeights:
    format: str
    n_in: int
    n_out: int
    degree: int  # structural entries per row (n_in for dense layers)
    values: np.ndarray  # int8, flat, kernel order
    col_idx: np.ndarray | None = None
    row_ptr: np.ndarray | None = None
    p: int = 0  # index_free: column step
    s: int = 0  # index_free: extra shift at each pass boundary

    @property
    def nnz(self) -> int:
        """Structural nonzeros (edges of the pattern), whatever the format stores."""
        return self.n_out * self.degree

    @property
    def weight_bytes(self) -> int:
        return int(self.values.size)

    @property
    def index_bytes(self) -> int:
        return sum(int(a.nbytes) for a in (self.col_idx, self.row_ptr) if a is not None)

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.index_bytes

    @property
    def col_ctype(self) -> str | None:
        return None if self.col_idx is None else c_type(self.col_idx.dtype)

    @property
    def row_ctype(self) -> str | None:
        return None if self.row_ptr is None else c_type(self.row_ptr.dtype)

    @property
    def pass_step(self) -> int:
        """Column jump at a pass boundary beyond the usual ``p``: ``(s * p) mod n_in``."""
        return (self.s * self.p) % self.n_in if self.n_in else 0

    def describe(self) -> dict:
        return {
            "format": self.format,
            "nnz": self.nnz,
            "stored_values": int(self.values.size),
            "weight_bytes": self.weight_bytes,
            "index_bytes": self.index_bytes,
            "index_type": self.col_ctype,
            "row_ptr_type": self.row_ctype,
        }
