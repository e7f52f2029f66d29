"""Message types and their payloads (docs/protocol.md). Parsing is strict: every
byte from the device is untrusted, so sizes and fields are checked and a bad
message raises :class:`ProtocolError`, never an IndexError or a silent misread."""

from __future__ import annotations

import functools
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from mcuflow.codec import encodings
from mcuflow.link.errors import DeviceError, ProtocolError
from mcuflow.link.frame import MAX_PAYLOAD, Frame, encode_frame, wire_size

HELLO = 0x01
INFER = 0x02
BYE = 0x03
INFER_SPARSE = 0x04
INFER_PART = 0x05
INFER_COMMIT = 0x06
HELLO_REPLY = 0x81
LOCAL_RESULT = 0x82
OFFLOAD = 0x83
BYE_REPLY = 0x84
XFER_STATUS = 0x85
ERROR = 0xFF

MESSAGE_NAMES = {
    HELLO: "HELLO",
    INFER: "INFER",
    BYE: "BYE",
    INFER_SPARSE: "INFER_SPARSE",
    INFER_PART: "INFER_PART",
    INFER_COMMIT: "INFER_COMMIT",
    HELLO_REPLY: "HELLO_REPLY",
    LOCAL_RESULT: "LOCAL_RESULT",
    OFFLOAD: "OFFLOAD",
    BYE_REPLY: "BYE_REPLY",
    XFER_STATUS: "XFER_STATUS",
    ERROR: "ERROR",
}

# OFFLOAD encodings (mcuflow.link.encodings holds the codecs).
ENC_DENSE = 0
ENC_BITMAP = 1
ENC_INDEX_VALUE = 2
ENC_ZERO_RUNS = 3
ENCODING_NAMES = {ENC_DENSE: "dense", ENC_BITMAP: "bitmap", ENC_INDEX_VALUE: "index-value", ENC_ZERO_RUNS: "zero-runs"}

CAP_DEDUP = 1 << 8
CAP_BYE = 1 << 9
CAP_INFER_SPARSE = 1 << 10
CAP_FRAGMENT = 1 << 11
CAP_INPUT_QUANT = 1 << 12  # HELLO_REPLY ends with the input scale (float32) and zero point (int8)
CAP_CLOCK = 1 << 13  # then with the core clock in Hz (u32) and how it was reached (u8, CLOCK_STATES)
CAP_SHAPE = 1 << 14  # then with the input and intermediate shapes, u16 h, w, c each (feature maps, HWC)
# The clock state byte (firmware/include/platform.h PLATFORM_CLOCK_*).
CLOCK_STATES = {
    0: "reset clock (board file)",
    1: "full speed",
    2: "fallback to the reset clock: oscillator did not start",
    3: "fallback to the reset clock: PLL did not lock",
    4: "fallback to the reset clock: regulator not ready",
    5: "fallback to the reset clock: flash wait states not taken",
    6: "fallback to the reset clock: clock switch not confirmed",
}

# Fragmented requests (INFER_PART / INFER_COMMIT / XFER_STATUS).
XFER_MAX_PARTS = 64
XFER_MISSING = 0  # XFER_STATUS reason: the listed parts have not arrived
XFER_BAD_CHECK = 1  # every part arrived but the body failed its CRC-32; the device discarded them all
_PART = struct.Struct("<HBBH")  # transfer id, part index, part count, body offset
_COMMIT = struct.Struct("<HBBHI")  # transfer id, part count, request type, body length, CRC-32
_STATUS = struct.Struct("<HBB")  # transfer id, part count, reason
PART_HEADER_LEN = _PART.size
COMMIT_LEN = _COMMIT.size

BOARD_NAME_MAX = 32
ERROR_TEXT_MAX = 64
_HELLO = struct.Struct("<BBIHHBBHI32sB")
_LOCAL = struct.Struct("<BBHI")
_OFFLOAD = struct.Struct("<BBHiII")
HELLO_FIXED_LEN = _HELLO.size
_INPUT_QUANT = struct.Struct("<fb")
_CLOCK = struct.Struct("<IB")
_SHAPE = struct.Struct("<6H")
LOCAL_RESULT_LEN = _LOCAL.size
OFFLOAD_FIXED_LEN = _OFFLOAD.size


def name(msg_type: int) -> str:
    return MESSAGE_NAMES.get(msg_type, f"0x{msg_type:02x}")


@dataclass(frozen=True)
class Hello:
    firmware_version: tuple[int, int]
    capabilities: int
    input_len: int
    intermediate_len: int
    num_classes: int
    num_exits: int
    max_payload: int
    frames_dropped: int
    model_hash: bytes
    board: str
    wire_len: int = 0
    input_scale: float | None = None  # with CAP_INPUT_QUANT: q = round(x / scale) + zero_point
    input_zero_point: int | None = None
    clock_hz: int | None = None  # with CAP_CLOCK: the core clock the device runs at
    clock_state: int | None = None  # with CAP_CLOCK: a CLOCK_STATES key
    input_shape: tuple[int, int, int] | None = None  # with CAP_SHAPE: (h, w, c), HWC-flattened
    intermediate_shape: tuple[int, int, int] | None = None  # with CAP_SHAPE: the offloaded feature map

    @property
    def clock_text(self) -> str | None:
        """E.g. '180,000,000 Hz (full speed)'; None when the device does not report its clock."""
        if self.clock_hz is None:
            return None
        return f"{self.clock_hz:,} Hz ({CLOCK_STATES.get(self.clock_state, f'state {self.clock_state}')})"

    @property
    def model_hash_hex(self) -> str:
        return self.model_hash.hex()

    @property
    def encodings(self) -> list[int]:
        return [i for i in range(8) if self.capabilities >> i & 1]

    def pack(self) -> bytes:
        board = self.board.encode("ascii")
        return (
            _HELLO.pack(
                *self.firmware_version,
                self.capabilities,
                self.input_len,
                self.intermediate_len,
                self.num_classes,
                self.num_exits,
                self.max_payload,
                self.frames_dropped,
                self.model_hash,
                len(board),
            )
            + board
            + (
                _INPUT_QUANT.pack(self.input_scale, self.input_zero_point)
                if self.capabilities & CAP_INPUT_QUANT
                else b""
            )
            + (_CLOCK.pack(self.clock_hz, self.clock_state) if self.capabilities & CAP_CLOCK else b"")
            + (_SHAPE.pack(*self.input_shape, *self.intermediate_shape) if self.capabilities & CAP_SHAPE else b"")
        )

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> Hello:
        if len(payload) < HELLO_FIXED_LEN:
            raise ProtocolError(f"HELLO_REPLY of {len(payload)} bytes is shorter than {HELLO_FIXED_LEN}")
        major, minor, caps, n_in, n_mid, n_cls, n_exits, max_payload, dropped, digest, k = _HELLO.unpack_from(payload)
        extra = _INPUT_QUANT.size if caps & CAP_INPUT_QUANT else 0
        clock = _CLOCK.size if caps & CAP_CLOCK else 0
        shape = _SHAPE.size if caps & CAP_SHAPE else 0
        if k > BOARD_NAME_MAX or len(payload) != HELLO_FIXED_LEN + k + extra + clock + shape:
            raise ProtocolError(f"HELLO_REPLY board name length {k} does not match its {len(payload)}-byte payload")
        raw_name = payload[HELLO_FIXED_LEN : HELLO_FIXED_LEN + k]
        scale = zero_point = None
        if extra:
            scale, zero_point = _INPUT_QUANT.unpack_from(payload, HELLO_FIXED_LEN + k)
            if not (math.isfinite(scale) and scale > 0):
                raise ProtocolError(f"HELLO_REPLY input scale {scale} is not a positive number")
        clock_hz = clock_state = None
        if clock:
            clock_hz, clock_state = _CLOCK.unpack_from(payload, HELLO_FIXED_LEN + k + extra)
            if clock_hz == 0:
                raise ProtocolError("HELLO_REPLY says the core clock is 0 Hz")
        in_shape = mid_shape = None
        if shape:
            dims = _SHAPE.unpack_from(payload, HELLO_FIXED_LEN + k + extra + clock)
            in_shape, mid_shape = dims[:3], dims[3:]
            if math.prod(in_shape) != n_in or math.prod(mid_shape) != n_mid:
                raise ProtocolError(
                    f"HELLO_REPLY shapes {in_shape} and {mid_shape} do not hold its {n_in} inputs and "
                    f"{n_mid} intermediate elements"
                )
        if not all(0x20 <= b < 0x7F for b in raw_name):
            raise ProtocolError("HELLO_REPLY board name is not printable ASCII")
        if not 0 < n_in <= MAX_PAYLOAD:
            raise ProtocolError(f"HELLO_REPLY input length {n_in} outside 1..{MAX_PAYLOAD}")
        if not 0 < n_mid <= MAX_PAYLOAD - OFFLOAD_FIXED_LEN:
            raise ProtocolError(f"HELLO_REPLY intermediate length {n_mid} outside 1..{MAX_PAYLOAD - OFFLOAD_FIXED_LEN}")
        if n_cls < 1:
            raise ProtocolError("HELLO_REPLY says the model has no classes")
        return cls(
            (major, minor), caps, n_in, n_mid, n_cls, n_exits, max_payload, dropped, digest, raw_name.decode(), wire_len,
            scale, zero_point, clock_hz, clock_state, in_shape, mid_shape,
        )  # fmt: skip


@dataclass(frozen=True)
class LocalResult:
    """The device answered at an early exit."""

    exit_index: int
    label: int
    confidence_q15: int
    instructions: int
    wire_len: int = 0

    @property
    def confidence(self) -> float:
        return self.confidence_q15 / 32768.0

    def pack(self) -> bytes:
        return _LOCAL.pack(self.exit_index, self.label, self.confidence_q15, self.instructions)

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> LocalResult:
        if len(payload) != LOCAL_RESULT_LEN:
            raise ProtocolError(f"LOCAL_RESULT of {len(payload)} bytes, expected {LOCAL_RESULT_LEN}")
        exit_index, label, conf, instr = _LOCAL.unpack(payload)
        if conf > 32768:
            raise ProtocolError(f"LOCAL_RESULT confidence {conf} exceeds 1.0 in Q0.15")
        return cls(exit_index, label, conf, instr, wire_len)


@dataclass(frozen=True)
class Offload:
    """The device sent its head output for the host to finish."""

    encoding: int
    bits: int
    zero_point: int
    scale: float
    instructions: int
    values: np.ndarray = field(repr=False)  # int8, decoded
    wire_len: int = 0

    @property
    def scale_bits(self) -> int:
        return struct.unpack("<I", struct.pack("<f", self.scale))[0]

    def dequantize(self) -> np.ndarray:
        return ((self.values.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)).astype(
            np.float32
        )

    def pack(self) -> bytes:
        values = np.asarray(self.values, dtype=np.int8)
        body = encodings.encode(self.encoding, values, self.bits, self.zero_point)
        head = _OFFLOAD.pack(self.encoding, self.bits, values.size, self.zero_point, self.scale_bits, self.instructions)
        return head + body

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0, expected_len: int | None = None) -> Offload:
        if len(payload) < OFFLOAD_FIXED_LEN:
            raise ProtocolError(f"OFFLOAD of {len(payload)} bytes is shorter than its {OFFLOAD_FIXED_LEN}-byte header")
        encoding, bits, count, zero_point, scale_bits, instr = _OFFLOAD.unpack_from(payload)
        if expected_len is not None and count != expected_len:
            raise ProtocolError(f"OFFLOAD carries {count} elements, the device announced {expected_len}")
        if not encodings.MIN_BITS <= bits <= encodings.MAX_BITS:
            raise ProtocolError(f"OFFLOAD with {bits}-bit values is not supported (2..8)")
        if bits == 8 and not -128 <= zero_point <= 127:
            raise ProtocolError(f"OFFLOAD zero point {zero_point} outside int8")
        if bits < 8 and not 0 <= zero_point < 1 << bits:
            raise ProtocolError(f"OFFLOAD zero point {zero_point} is not a {bits}-bit code")
        (scale,) = struct.unpack("<f", struct.pack("<I", scale_bits))
        if not (math.isfinite(scale) and scale > 0):
            raise ProtocolError(f"OFFLOAD scale {scale!r} is not a positive finite number")
        values = decode_tensor(encoding, payload[OFFLOAD_FIXED_LEN:], count, fill=zero_point, bits=bits)
        return cls(encoding, bits, zero_point, scale, instr, values, wire_len)


def decode_tensor(encoding: int, data: bytes, count: int, fill: int = 0, bits: int = 8) -> np.ndarray:
    """Decode an OFFLOAD body into ``count`` int8-held codes; never writes out of bounds.
    ``fill`` is the value elements left out of a sparse encoding take (the zero point)."""
    if encoding not in ENCODING_NAMES:
        raise ProtocolError(f"OFFLOAD encoding {encoding} (unassigned) is not supported by this host")
    return encodings.decode(encoding, data, count, bits, fill)


@dataclass(frozen=True)
class ErrorReply:
    code: int
    text: str
    wire_len: int = 0

    def pack(self) -> bytes:
        return bytes([self.code]) + self.text.encode("ascii")[:ERROR_TEXT_MAX]

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> ErrorReply:
        if not 1 <= len(payload) <= 1 + ERROR_TEXT_MAX:
            raise ProtocolError(f"ERROR message of {len(payload)} bytes (1..{1 + ERROR_TEXT_MAX} allowed)")
        return cls(payload[0], payload[1:].decode("ascii", errors="replace"), wire_len)

    def to_exception(self, seq: int | None = None) -> DeviceError:
        return DeviceError(self.code, self.text, seq)


def body_check(request_type: int, body: bytes) -> int:
    """The CRC-32 an INFER_COMMIT carries: over the request type byte, then the body."""
    return zlib.crc32(body, zlib.crc32(bytes([request_type])))


def part_payload(transfer_id: int, index: int, count: int, offset: int, data: bytes) -> bytes:
    return _PART.pack(transfer_id & 0xFFFF, index, count, offset) + bytes(data)


def commit_payload(transfer_id: int, count: int, request_type: int, body: bytes) -> bytes:
    return _COMMIT.pack(transfer_id & 0xFFFF, count, request_type, len(body), body_check(request_type, body))


def parse_part(payload: bytes) -> tuple[int, int, int, int, bytes]:
    """(transfer id, index, count, offset, data) of an INFER_PART; ProtocolError if malformed."""
    if len(payload) <= PART_HEADER_LEN:
        raise ProtocolError(f"INFER_PART of {len(payload)} bytes carries no data")
    tid, index, count, offset = _PART.unpack_from(payload)
    if not 0 < count <= XFER_MAX_PARTS or index >= count:
        raise ProtocolError(f"INFER_PART {index} of {count} is out of range")
    return tid, index, count, offset, payload[PART_HEADER_LEN:]


def parse_commit(payload: bytes) -> tuple[int, int, int, int, int]:
    """(transfer id, count, request type, body length, CRC-32) of an INFER_COMMIT."""
    if len(payload) != COMMIT_LEN:
        raise ProtocolError(f"INFER_COMMIT of {len(payload)} bytes, expected {COMMIT_LEN}")
    return _COMMIT.unpack(payload)


@dataclass(frozen=True)
class TransferStatus:
    """The device's answer to an INFER_COMMIT it cannot run yet: the parts it still needs."""

    transfer_id: int
    part_count: int
    reason: int  # XFER_MISSING or XFER_BAD_CHECK
    missing: tuple[int, ...]
    wire_len: int = 0

    def pack(self) -> bytes:
        bitmap = bytearray((self.part_count + 7) // 8)
        for i in self.missing:
            bitmap[i // 8] |= 1 << (i % 8)
        return _STATUS.pack(self.transfer_id, self.part_count, self.reason) + bytes(bitmap)

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> TransferStatus:
        if len(payload) < _STATUS.size:
            raise ProtocolError(f"XFER_STATUS of {len(payload)} bytes is too short")
        tid, count, reason = _STATUS.unpack_from(payload)
        if not 0 < count <= XFER_MAX_PARTS or reason not in (XFER_MISSING, XFER_BAD_CHECK):
            raise ProtocolError(f"XFER_STATUS with {count} parts and reason {reason} breaks the protocol")
        bitmap = payload[_STATUS.size :]
        if len(bitmap) != (count + 7) // 8:
            raise ProtocolError(f"XFER_STATUS bitmap of {len(bitmap)} bytes for {count} parts")
        bits = int.from_bytes(bitmap, "little")
        if bits >> count:
            raise ProtocolError("XFER_STATUS marks parts past its part count")
        missing = tuple(i for i in range(count) if bits >> i & 1)
        if reason == XFER_MISSING and not missing:
            raise ProtocolError("XFER_STATUS says parts are missing but lists none")
        if reason == XFER_BAD_CHECK and len(missing) != count:
            raise ProtocolError("XFER_STATUS reports a failed body check but keeps some parts")
        return cls(tid, count, reason, missing, wire_len)


Reply = Hello | LocalResult | Offload | ErrorReply | TransferStatus


def parse_reply(frame: Frame, expected_intermediate: int | None = None) -> Reply | None:
    """Parse a device→host frame. ``None`` for BYE_REPLY; raises ProtocolError otherwise."""
    if frame.version != 1:
        raise ProtocolError(f"device speaks protocol version {frame.version}; this host speaks 1")
    if frame.type == HELLO_REPLY:
        return Hello.parse(frame.payload, frame.wire_len)
    if frame.type == LOCAL_RESULT:
        return LocalResult.parse(frame.payload, frame.wire_len)
    if frame.type == OFFLOAD:
        return Offload.parse(frame.payload, frame.wire_len, expected_intermediate)
    if frame.type == ERROR:
        return ErrorReply.parse(frame.payload, frame.wire_len)
    if frame.type == XFER_STATUS:
        return TransferStatus.parse(frame.payload, frame.wire_len)
    if frame.type == BYE_REPLY:
        if frame.payload:
            raise ProtocolError("BYE_REPLY carries a payload")
        return None
    raise ProtocolError(f"device sent message type {name(frame.type)}, which is not a reply")


@functools.lru_cache(maxsize=4096)
def offload_wire_bytes(body_len: int, seq: int = 0) -> int:
    """Bytes of an OFFLOAD frame on the wire (COBS + delimiter) for a body of ``body_len`` bytes.

    Exact for frames under 254 raw bytes, whose COBS encoding is always one byte longer;
    longer frames may take fewer bytes than this (it assumes the worst case). A body too big for one
    frame (the float32 baseline of a feature map, say) gets the size that one frame would have."""
    if OFFLOAD_FIXED_LEN + body_len > MAX_PAYLOAD:
        return wire_size(OFFLOAD_FIXED_LEN + body_len)
    return len(encode_frame(OFFLOAD, seq, b"\x01" * (OFFLOAD_FIXED_LEN + body_len)))
