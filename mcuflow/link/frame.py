"""Frames: header + payload + CRC-16, COBS-stuffed, 0x00-delimited (docs/protocol.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mcuflow.link import cobs
from mcuflow.link.crc import crc16

VERSION = 1
HEADER = struct.Struct("<BBHH")  # version, type, seq, length
HEADER_LEN = HEADER.size
# A lean answer (docs/protocol.md "Lean frames"): type, seq, payload, CRC; its type byte is never VERSION.
LEAN_HEADER = struct.Struct("<BH")
LEAN_HEADER_LEN = LEAN_HEADER.size
LEAN_TYPES = frozenset([0xC2, *range(0xC8, 0xD0)])
CRC_LEN = 2
MAX_PAYLOAD = 1024
MAX_RAW = HEADER_LEN + MAX_PAYLOAD + CRC_LEN
MAX_ENCODED = cobs.max_encoded_len(MAX_RAW)
DELIMITER = b"\x00"


@dataclass(frozen=True)
class Frame:
    """A received frame whose CRC checked out. ``wire_len`` counts stuffing and the delimiter."""

    version: int  # 0 for a lean frame, which has none
    type: int
    seq: int
    payload: bytes
    wire_len: int


@dataclass(frozen=True)
class FrameDrop:
    """Bytes up to a delimiter that did not make a valid frame, and why."""

    reason: str  # "oversize", "cobs", "short", "crc", "length"
    wire_len: int


def encode_frame(msg_type: int, seq: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    """The bytes to put on the wire, delimiter included."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    raw = HEADER.pack(version, msg_type, seq & 0xFFFF, len(payload)) + bytes(payload)
    raw += struct.pack("<H", crc16(raw))
    return cobs.encode(raw) + DELIMITER


def encode_lean_frame(lean_type: int, seq: int, payload: bytes = b"") -> bytes:
    """A lean answer's bytes on the wire, delimiter included (the device sends these; tests and the
    Python device build them here)."""
    if lean_type not in LEAN_TYPES:
        raise ValueError(f"0x{lean_type:02x} is not a lean frame type")
    raw = LEAN_HEADER.pack(lean_type, seq & 0xFFFF) + bytes(payload)
    raw += struct.pack("<H", crc16(raw))
    return cobs.encode(raw) + DELIMITER


def wire_size(payload_len: int, payload: bytes | None = None) -> int:
    """Bytes on the wire for a payload: exact if ``payload`` is given, else the worst case."""
    if payload is not None:
        return len(encode_frame(0, 0, payload))
    return cobs.max_encoded_len(HEADER_LEN + payload_len + CRC_LEN) + 1


class FrameDecoder:
    """Turns a byte stream into frames, resyncing at every delimiter.

    Never buffers more than ``MAX_ENCODED`` bytes: a longer run is dropped as
    "oversize" when its delimiter arrives. ``strict_length`` drops frames whose
    length field disagrees with their size (the host wants that; the device
    answers them with an ERROR instead). ``lean`` also takes lean answers (a
    frame whose first byte is a lean type): the host does, the device does not.
    """

    def __init__(self, strict_length: bool = True, lean: bool = True):
        self.strict_length = strict_length
        self.lean = lean
        self._buf = bytearray()
        self._overflow = False
        self._skipped = 0
        self.frames = 0
        self.drops: dict[str, int] = {}

    def reset(self) -> None:
        """Forget a partly received frame (after a timeout, say)."""
        self._buf.clear()
        self._overflow = False
        self._skipped = 0

    @property
    def pending(self) -> int:
        return len(self._buf) + self._skipped

    def feed(self, data: bytes) -> list[Frame | FrameDrop]:
        out: list[Frame | FrameDrop] = []
        start = 0
        while start < len(data):
            end = data.find(0, start)
            chunk = data[start:] if end < 0 else data[start:end]
            room = MAX_ENCODED - len(self._buf)
            if len(chunk) > room:
                self._overflow = True
                self._skipped += len(chunk) - max(room, 0)
                chunk = chunk[: max(room, 0)]
            self._buf += chunk
            if end < 0:
                break
            start = end + 1
            if self._buf or self._overflow:
                out.append(self._finish())
        return out

    def _finish(self) -> Frame | FrameDrop:
        encoded, overflow, skipped = bytes(self._buf), self._overflow, self._skipped
        self.reset()
        wire_len = len(encoded) + skipped + 1
        if overflow:
            return self._drop("oversize", wire_len)
        try:
            raw = cobs.decode(encoded)
        except cobs.CobsError:
            return self._drop("cobs", wire_len)
        if self.lean and raw and raw[0] in LEAN_TYPES:
            return self._lean(raw, wire_len)
        if len(raw) < HEADER_LEN + CRC_LEN or len(raw) > MAX_RAW:
            return self._drop("short" if len(raw) < HEADER_LEN + CRC_LEN else "oversize", wire_len)
        (crc,) = struct.unpack_from("<H", raw, len(raw) - CRC_LEN)
        if crc != crc16(raw[:-CRC_LEN]):
            return self._drop("crc", wire_len)
        version, msg_type, seq, length = HEADER.unpack_from(raw)
        payload = raw[HEADER_LEN:-CRC_LEN]
        if self.strict_length and length != len(payload):
            return self._drop("length", wire_len)
        self.frames += 1
        return Frame(version, msg_type, seq, payload, wire_len)

    def _lean(self, raw: bytes, wire_len: int) -> Frame | FrameDrop:
        """A lean answer: no version or length field; the CRC and the payload's own parse check it."""
        if len(raw) < LEAN_HEADER_LEN + CRC_LEN:
            return self._drop("short", wire_len)
        (crc,) = struct.unpack_from("<H", raw, len(raw) - CRC_LEN)
        if crc != crc16(raw[:-CRC_LEN]):
            return self._drop("crc", wire_len)
        msg_type, seq = LEAN_HEADER.unpack_from(raw)
        self.frames += 1
        return Frame(0, msg_type, seq, raw[LEAN_HEADER_LEN:-CRC_LEN], wire_len)

    def _drop(self, reason: str, wire_len: int) -> FrameDrop:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        return FrameDrop(reason, wire_len)
