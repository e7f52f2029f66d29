"""Tensor encodings shared by INFER_SPARSE and OFFLOAD (docs/protocol.md, "Encodings").

Decoders treat their input as hostile: sizes are checked before anything is
written, and a decoder never produces more or fewer than ``n`` elements.
"""

from __future__ import annotations

import numpy as np

from mcuflow.link.errors import ProtocolError

DENSE = 0
BITMAP = 1


def bitmap_encode(values: np.ndarray, fill: int) -> bytes:
    """A bitmap of ceil(n/8) bytes (bit i, LSB first: element i differs from ``fill``),
    then the differing values in order."""
    v = np.asarray(values, dtype=np.int8).reshape(-1)
    mask = v != np.int8(fill)
    return np.packbits(mask, bitorder="little").tobytes() + v[mask].tobytes()


def bitmap_decode(data: bytes, n: int, fill: int) -> np.ndarray:
    nb = (n + 7) // 8
    if len(data) < nb:
        raise ProtocolError(f"bitmap encoding of {n} elements needs {nb} bitmap bytes, got {len(data)}")
    bits = np.unpackbits(np.frombuffer(data[:nb], dtype=np.uint8), bitorder="little")
    if bits[n:].any():
        raise ProtocolError("bitmap encoding sets bits past the end of the tensor")
    mask = bits[:n].astype(bool)
    k = int(mask.sum())
    if len(data) != nb + k:
        raise ProtocolError(f"bitmap encoding marks {k} values but carries {len(data) - nb}")
    out = np.full(n, fill, dtype=np.int8)
    out[mask] = np.frombuffer(data[nb:], dtype=np.int8)
    return out


def bitmap_size(values: np.ndarray, fill: int) -> int:
    v = np.asarray(values, dtype=np.int8).reshape(-1)
    return (v.size + 7) // 8 + int((v != np.int8(fill)).sum())
