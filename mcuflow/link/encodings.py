"""Tensor encodings shared by INFER_SPARSE and OFFLOAD (docs/protocol.md, "Encodings"),
and the link compression the device applies before an OFFLOAD (pruning, narrow codes).

Decoders treat their input as hostile: sizes are checked before anything is
written, and a decoder never produces more or fewer than ``n`` elements.

Every function here has a twin in ``firmware/link/mcuflow_link.c``; the two are
tested against each other (tests/test_encodings_c.py) and must agree byte for byte.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mcuflow.link.errors import ProtocolError

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


# ---------------------------------------------------------------- link compression settings


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
        from mcuflow.errors import ConfigError

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
