"""Consistent Overhead Byte Stuffing (Cheshire & Baker), without the delimiter."""

from __future__ import annotations


class CobsError(ValueError):
    """Malformed COBS data."""


def encode(data: bytes) -> bytes:
    """Stuff ``data`` so it contains no 0x00; at most ``len + 1 + len // 254`` bytes."""
    out = bytearray([0])
    code_at, code = 0, 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def decode(data: bytes) -> bytes:
    """Undo :func:`encode`; raises :class:`CobsError` on malformed input."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"zero byte at offset {i} inside a COBS frame")
        end = i + code
        if end > n:
            raise CobsError(f"COBS block at offset {i} runs past the end ({code} > {n - i})")
        block = data[i + 1 : end]
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def max_encoded_len(n: int) -> int:
    return n + 1 + n // 254
