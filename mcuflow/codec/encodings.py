"""Tensor encodings shared by INFER_SPARSE and OFFLOAD (docs/protocol.md, "Encodings"): bitmaps,
bit-packed narrow codes and the four OFFLOAD bodies. Numpy only, no protocol state.

Decoders treat their input as hostile: sizes are checked before anything is
written, and a decoder never produces more or fewer than ``n`` elements.

Every function here has a twin in ``firmware/link/mcuflow_link.c``; the two are
tested against each other (tests/test_encodings_c.py) and must agree byte for byte.
"""

from __future__ import annotations

import numpy as np

from mcuflow.errors import ProtocolError

DENSE = 0
BITMAP = 1
INDEX_VALUE = 2
ZERO_RUNS = 3
ENCODINGS = (DENSE, BITMAP, INDEX_VALUE, ZERO_RUNS)
NAMES = {DENSE: "dense", BITMAP: "bitmap", INDEX_VALUE: "index-value", ZERO_RUNS: "zero-runs"}
MIN_BITS, MAX_BITS = 2, 8
RUN_ESCAPE = 15  # a zero-runs nibble of 15: fifteen fill elements and no value yet


# ---------------------------------------------------------------- the INFER_SPARSE bitmap (int8 values)


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


# ---------------------------------------------------------------- bit packing


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """``bits``-bit codes as one LSB-first bit stream (element i in stream bits i*B .. i*B+B-1)."""
    u = np.asarray(codes).astype(np.int64).reshape(-1) & ((1 << bits) - 1)
    if bits == 8:
        return u.astype(np.uint8).tobytes()
    stream = ((u[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little").tobytes()


def packed_size(k: int, bits: int) -> int:
    return (k * bits + 7) // 8


def unpack_codes(data: bytes, k: int, bits: int, fill_int8: bool) -> np.ndarray:
    """Inverse of :func:`pack_codes` for exactly ``packed_size(k, bits)`` bytes; rejects set padding bits."""
    if len(data) != packed_size(k, bits):
        raise ProtocolError(f"{k} packed {bits}-bit values take {packed_size(k, bits)} bytes, got {len(data)}")
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return raw.view(np.int8).copy() if fill_int8 else raw.astype(np.int8)
    stream = np.unpackbits(raw, bitorder="little")
    if stream[k * bits :].any():
        raise ProtocolError(f"packed {bits}-bit values set padding bits past value {k}")
    u = (stream[: k * bits].reshape(k, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)
    return u.astype(np.int8)


# ---------------------------------------------------------------- the four OFFLOAD encodings


def count_width(n: int) -> int:
    """Bytes of a count or an index for an ``n``-element tensor (u8 up to 255 elements, else u16)."""
    return 1 if n <= 255 else 2


def _put(v: int, w: int) -> bytes:
    return int(v).to_bytes(w, "little")


def _runs(idx: np.ndarray) -> list[int]:
    nibbles: list[int] = []
    prev = -1
    for i in idx.tolist():
        gap = i - prev - 1
        while gap >= RUN_ESCAPE:
            nibbles.append(RUN_ESCAPE)
            gap -= RUN_ESCAPE
        nibbles.append(gap)
        prev = i
    return nibbles


def encode(encoding: int, codes: np.ndarray, bits: int, fill: int) -> bytes:
    """The body of one encoding for int8-held ``codes`` (n,) whose fill (zero point) is ``fill``."""
    c = np.asarray(codes, dtype=np.int8).reshape(-1)
    n = c.size
    mask = c != np.int8(fill)
    vals = pack_codes(c[mask], bits)
    w = count_width(n)
    if encoding == DENSE:
        return pack_codes(c, bits)
    if encoding == BITMAP:
        return np.packbits(mask, bitorder="little").tobytes() + vals
    idx = np.flatnonzero(mask)
    if encoding == INDEX_VALUE:
        return _put(idx.size, w) + b"".join(_put(i, w) for i in idx.tolist()) + vals
    if encoding == ZERO_RUNS:
        nib = _runs(idx)
        if len(nib) % 2:
            nib.append(0)
        packed = bytes(nib[j] | nib[j + 1] << 4 for j in range(0, len(nib), 2))
        return _put(idx.size, w) + packed + vals
    raise ValueError(f"no encoder for encoding {encoding}")


def encoded_sizes(codes: np.ndarray, bits: int, fill: int) -> np.ndarray:
    """Body sizes of the four encodings, for codes (n,) or a batch (N, n) -> (4,) or (N, 4)."""
    c = np.asarray(codes, dtype=np.int8)
    batch = c.reshape(-1, c.shape[-1])
    n = batch.shape[1]
    mask = batch != np.int8(fill)
    k = mask.sum(axis=1)
    w = count_width(n)
    vals = (k * bits + 7) // 8
    idx = np.arange(n)[None, :]
    last = np.maximum.accumulate(np.where(mask, idx, -1), axis=1)
    before = np.concatenate([np.full((len(batch), 1), -1), last[:, :-1]], axis=1)
    nibbles = np.where(mask, (idx - before - 1) // RUN_ESCAPE + 1, 0).sum(axis=1)
    sizes = np.stack(
        [
            np.full(len(batch), packed_size(n, bits)),
            (n + 7) // 8 + vals,
            w * (1 + k) + vals,
            w + (nibbles + 1) // 2 + vals,
        ],
        axis=1,
    )
    return sizes[0] if c.ndim == 1 else sizes


def choose(codes: np.ndarray, bits: int, fill: int) -> int:
    """The encoding the device picks: the smallest body, the lowest id on a tie."""
    return int(np.argmin(encoded_sizes(codes, bits, fill)))


def encode_best(codes: np.ndarray, bits: int, fill: int) -> tuple[int, bytes]:
    enc = choose(codes, bits, fill)
    return enc, encode(enc, codes, bits, fill)


def decode(encoding: int, data: bytes, n: int, bits: int, fill: int) -> np.ndarray:
    """Decode a body into exactly ``n`` int8-held codes; raises ProtocolError on anything malformed."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ProtocolError(f"{bits}-bit values are not supported ({MIN_BITS}..{MAX_BITS})")
    signed = bits == 8
    w = count_width(n)
    if encoding == DENSE:
        return unpack_codes(data, n, bits, signed)
    if encoding == BITMAP:
        nb = (n + 7) // 8
        if len(data) < nb:
            raise ProtocolError(f"bitmap encoding of {n} elements needs {nb} bitmap bytes, got {len(data)}")
        flags = np.unpackbits(np.frombuffer(data[:nb], dtype=np.uint8), bitorder="little")
        if flags[n:].any():
            raise ProtocolError("bitmap encoding sets bits past the end of the tensor")
        mask = flags[:n].astype(bool)
        out = np.full(n, fill, dtype=np.int8)
        out[mask] = unpack_codes(data[nb:], int(mask.sum()), bits, signed)
        return out
    if encoding not in (INDEX_VALUE, ZERO_RUNS):
        raise ProtocolError(f"OFFLOAD encoding {encoding} is not supported by this host")
    if len(data) < w:
        raise ProtocolError(f"{NAMES[encoding]} encoding is shorter than its {w}-byte count")
    k = int.from_bytes(data[:w], "little")
    if k > n:
        raise ProtocolError(f"{NAMES[encoding]} encoding carries {k} values for a {n}-element tensor")
    if encoding == INDEX_VALUE:
        end = w + k * w
        if len(data) < end:
            raise ProtocolError(f"index-value encoding of {k} values is truncated")
        idx = np.frombuffer(data[w:end], dtype=np.uint8 if w == 1 else "<u2").astype(np.int64)
        if k and (idx.max() >= n or np.any(np.diff(idx) <= 0)):
            raise ProtocolError("index-value encoding has an index out of range or out of order")
    else:
        idx_list: list[int] = []
        pos, j = 0, 0
        body = data[w:]
        while len(idx_list) < k:
            if j // 2 >= len(body):
                raise ProtocolError("zero-runs encoding ends before its last value")
            nib = body[j // 2] >> (4 * (j % 2)) & 0xF
            j += 1
            pos += nib
            if nib == RUN_ESCAPE:
                continue
            if pos >= n:
                raise ProtocolError("zero-runs encoding places a value past the end of the tensor")
            idx_list.append(pos)
            pos += 1
        if j % 2 and body[j // 2] >> 4:
            raise ProtocolError("zero-runs encoding sets its padding nibble")
        end = w + (j + 1) // 2
        idx = np.asarray(idx_list, dtype=np.int64)
    out = np.full(n, fill, dtype=np.int8)
    out[idx] = unpack_codes(data[end:], k, bits, signed)
    return out
