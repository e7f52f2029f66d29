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
REPLAY = 0x07
HELLO_REPLY = 0x81
LOCAL_RESULT = 0x82
OFFLOAD = 0x83
BYE_REPLY = 0x84
XFER_STATUS = 0x85
REPLAY_END = 0x86
ERROR = 0xFF
# Lean answers (CAP_LEAN, mcuflow.link.frame): the frame's first byte is its type.
LEAN_LOCAL = 0xC2
LEAN_OFFLOAD = 0xC8  # + the encoding id, 0..7

MESSAGE_NAMES = {
    HELLO: "HELLO",
    INFER: "INFER",
    BYE: "BYE",
    INFER_SPARSE: "INFER_SPARSE",
    INFER_PART: "INFER_PART",
    INFER_COMMIT: "INFER_COMMIT",
    REPLAY: "REPLAY",
    HELLO_REPLY: "HELLO_REPLY",
    LOCAL_RESULT: "LOCAL_RESULT",
    OFFLOAD: "OFFLOAD",
    BYE_REPLY: "BYE_REPLY",
    XFER_STATUS: "XFER_STATUS",
    REPLAY_END: "REPLAY_END",
    ERROR: "ERROR",
    LEAN_LOCAL: "LOCAL_RESULT (lean)",
    **{LEAN_OFFLOAD + e: f"OFFLOAD (lean, encoding {e})" for e in range(8)},
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
CAP_LEAN = 1 << 14  # lean answers when the HELLO asks; HELLO_REPLY then ends with what they leave out
CAP_REPLAY = 1 << 15  # REPLAY from the device's input table; HELLO_REPLY then ends with its sample count
CAP_SHAPE = 1 << 16  # then with the input and intermediate shapes, u16 h, w, c each (feature maps, HWC)
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
_LEAN = struct.Struct("<BhI")  # bits of the offloaded values, their zero point, the scale's float32 bits
_REPLAY_COUNT = struct.Struct("<I")
_OPTIONS = struct.Struct("<I")
_REPLAY = struct.Struct("<III")  # first index, count, period (counter units; 0: free-running)
_REPLAY_END = struct.Struct("<BIIIIQQ")
_SHAPE = struct.Struct("<6H")
LEAN_LOCAL_LEN = 4
REPLAY_END_LEN = _REPLAY_END.size
# REPLAY_END status
REPLAY_DONE = 0
REPLAY_STOPPED = 1
REPLAY_NO_TABLE = 2
REPLAY_RANGE = 3
REPLAY_STATUS = {
    REPLAY_DONE: "done",
    REPLAY_STOPPED: "stopped by the host",
    REPLAY_NO_TABLE: "the device has no valid input table",
    REPLAY_RANGE: "the range is not inside the input table",
}
LOCAL_RESULT_LEN = _LOCAL.size
OFFLOAD_FIXED_LEN = _OFFLOAD.size


def name(msg_type: int) -> str:
    return MESSAGE_NAMES.get(msg_type, f"0x{msg_type:02x}")


def is_lean(msg_type: int) -> bool:
    """Whether a frame's first byte marks it as a lean answer (mcuflow.link.frame)."""
    return msg_type == LEAN_LOCAL or LEAN_OFFLOAD <= msg_type < LEAN_OFFLOAD + 8


def _float_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _bits_float(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _check_offload_quant(what: str, bits: int, zero_point: int, scale: float) -> None:
    """The width, zero point and scale of offloaded values, as every OFFLOAD (or HELLO for lean ones) must have them."""
    if not encodings.MIN_BITS <= bits <= encodings.MAX_BITS:
        raise ProtocolError(f"{what} with {bits}-bit values is not supported (2..8)")
    if bits == 8 and not -128 <= zero_point <= 127:
        raise ProtocolError(f"{what} zero point {zero_point} outside int8")
    if bits < 8 and not 0 <= zero_point < 1 << bits:
        raise ProtocolError(f"{what} zero point {zero_point} is not a {bits}-bit code")
    if not (math.isfinite(scale) and scale > 0):
        raise ProtocolError(f"{what} scale {scale!r} is not a positive finite number")


def hello_options(capabilities: int) -> bytes:
    """The payload of a HELLO that asks for ``capabilities`` (CAP_LEAN) for the session."""
    return _OPTIONS.pack(capabilities)


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
    lean_bits: int | None = None  # with CAP_LEAN: what every lean OFFLOAD leaves out: the values' width,
    lean_zero_point: int | None = None  # their zero point
    lean_scale: float | None = None  # and scale
    replay_count: int | None = None  # with CAP_REPLAY: the samples of the device's input table (0: none valid)
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
            + (
                _LEAN.pack(self.lean_bits, self.lean_zero_point, _float_bits(self.lean_scale))
                if self.capabilities & CAP_LEAN
                else b""
            )
            + (_REPLAY_COUNT.pack(self.replay_count) if self.capabilities & CAP_REPLAY else b"")
            + (_SHAPE.pack(*self.input_shape, *self.intermediate_shape) if self.capabilities & CAP_SHAPE else b"")
        )

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> Hello:
        if len(payload) < HELLO_FIXED_LEN:
            raise ProtocolError(f"HELLO_REPLY of {len(payload)} bytes is shorter than {HELLO_FIXED_LEN}")
        major, minor, caps, n_in, n_mid, n_cls, n_exits, max_payload, dropped, digest, k = _HELLO.unpack_from(payload)
        extra = _INPUT_QUANT.size if caps & CAP_INPUT_QUANT else 0
        clock = _CLOCK.size if caps & CAP_CLOCK else 0
        lean = _LEAN.size if caps & CAP_LEAN else 0
        replay = _REPLAY_COUNT.size if caps & CAP_REPLAY else 0
        shape = _SHAPE.size if caps & CAP_SHAPE else 0
        if k > BOARD_NAME_MAX or len(payload) != HELLO_FIXED_LEN + k + extra + clock + lean + replay + shape:
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
        lean_bits = lean_zp = lean_scale = replay_count = None
        at = HELLO_FIXED_LEN + k + extra + clock
        if lean:
            lean_bits, lean_zp, scale_bits = _LEAN.unpack_from(payload, at)
            lean_scale = _bits_float(scale_bits)
            _check_offload_quant("HELLO_REPLY", lean_bits, lean_zp, lean_scale)
        if replay:
            (replay_count,) = _REPLAY_COUNT.unpack_from(payload, at + lean)
        in_shape = mid_shape = None
        if shape:
            dims = _SHAPE.unpack_from(payload, at + lean + replay)
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
            scale, zero_point, clock_hz, clock_state, lean_bits, lean_zp, lean_scale, replay_count, in_shape, mid_shape,
        )  # fmt: skip


@dataclass(frozen=True)
class LocalResult:
    """The device answered at an early exit."""

    exit_index: int
    label: int
    confidence_q15: int
    instructions: int | None  # None in a lean answer (the device's totals come in REPLAY_END)
    wire_len: int = 0

    @property
    def confidence(self) -> float:
        return self.confidence_q15 / 32768.0

    def pack(self) -> bytes:
        return _LOCAL.pack(self.exit_index, self.label, self.confidence_q15, self.instructions or 0)

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> LocalResult:
        if len(payload) != LOCAL_RESULT_LEN:
            raise ProtocolError(f"LOCAL_RESULT of {len(payload)} bytes, expected {LOCAL_RESULT_LEN}")
        exit_index, label, conf, instr = _LOCAL.unpack(payload)
        if conf > 32768:
            raise ProtocolError(f"LOCAL_RESULT confidence {conf} exceeds 1.0 in Q0.15")
        return cls(exit_index, label, conf, instr, wire_len)

    @classmethod
    def parse_lean(cls, payload: bytes, wire_len: int = 0) -> LocalResult:
        """A lean LOCAL_RESULT: the full one without its instruction count."""
        if len(payload) != LEAN_LOCAL_LEN:
            raise ProtocolError(f"lean LOCAL_RESULT of {len(payload)} bytes, expected {LEAN_LOCAL_LEN}")
        return cls.parse(payload + bytes(4), wire_len)._replace_instructions(None)

    def _replace_instructions(self, instructions: int | None) -> LocalResult:
        return LocalResult(self.exit_index, self.label, self.confidence_q15, instructions, self.wire_len)

    def pack_lean(self) -> tuple[int, bytes]:
        """(frame type, payload) of this answer as a lean frame."""
        return LEAN_LOCAL, self.pack()[:LEAN_LOCAL_LEN]


@dataclass(frozen=True)
class Offload:
    """The device sent its head output for the host to finish."""

    encoding: int
    bits: int
    zero_point: int
    scale: float
    instructions: int | None  # None in a lean answer (the device's totals come in REPLAY_END)
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
        head = _OFFLOAD.pack(
            self.encoding, self.bits, values.size, self.zero_point, self.scale_bits, self.instructions or 0
        )
        return head + body

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0, expected_len: int | None = None) -> Offload:
        if len(payload) < OFFLOAD_FIXED_LEN:
            raise ProtocolError(f"OFFLOAD of {len(payload)} bytes is shorter than its {OFFLOAD_FIXED_LEN}-byte header")
        encoding, bits, count, zero_point, scale_bits, instr = _OFFLOAD.unpack_from(payload)
        if expected_len is not None and count != expected_len:
            raise ProtocolError(f"OFFLOAD carries {count} elements, the device announced {expected_len}")
        scale = _bits_float(scale_bits)
        _check_offload_quant("OFFLOAD", bits, zero_point, scale)
        values = decode_tensor(encoding, payload[OFFLOAD_FIXED_LEN:], count, fill=zero_point, bits=bits)
        return cls(encoding, bits, zero_point, scale, instr, values, wire_len)

    @classmethod
    def parse_lean(cls, msg_type: int, payload: bytes, info: Hello, wire_len: int = 0) -> Offload:
        """A lean OFFLOAD: the encoding is in the frame type, the tensor is the payload, the rest is the
        session's (``info``, the device's HELLO_REPLY). No instruction count travels with it."""
        if info.lean_bits is None or info.lean_zero_point is None or info.lean_scale is None:
            raise ProtocolError("a lean OFFLOAD arrived, but the device's HELLO_REPLY announced no lean answers")
        values = decode_tensor(
            msg_type - LEAN_OFFLOAD, payload, info.intermediate_len, fill=info.lean_zero_point, bits=info.lean_bits
        )
        return cls(
            msg_type - LEAN_OFFLOAD, info.lean_bits, info.lean_zero_point, info.lean_scale, None, values, wire_len
        )

    def pack_lean(self) -> tuple[int, bytes]:
        """(frame type, payload) of this answer as a lean frame."""
        values = np.asarray(self.values, dtype=np.int8)
        return LEAN_OFFLOAD + self.encoding, encodings.encode(self.encoding, values, self.bits, self.zero_point)


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


def replay_payload(first: int, count: int, period: int = 0) -> bytes:
    """A REPLAY request: run samples ``first .. first + count - 1`` of the device's input table, the next
    no sooner than ``period`` counter units after the last started (0: as fast as the device goes)."""
    return _REPLAY.pack(first, count, period)


def parse_replay(payload: bytes) -> tuple[int, int, int]:
    if len(payload) != _REPLAY.size:
        raise ProtocolError(f"REPLAY of {len(payload)} bytes, expected {_REPLAY.size}")
    return _REPLAY.unpack(payload)


@dataclass(frozen=True)
class ReplayEnd:
    """How a REPLAY run ended, and the device's own totals over the samples it ran."""

    status: int  # REPLAY_STATUS key
    first: int
    run: int  # samples run (answers sent), from ``first`` on
    local: int
    offload: int
    instructions_local: int  # summed head instruction (cycle) counts of the local answers
    instructions_offload: int
    wire_len: int = 0

    @property
    def status_text(self) -> str:
        return REPLAY_STATUS.get(self.status, f"status {self.status}")

    def pack(self) -> bytes:
        return _REPLAY_END.pack(
            self.status, self.first, self.run, self.local, self.offload, self.instructions_local,
            self.instructions_offload,
        )  # fmt: skip

    @classmethod
    def parse(cls, payload: bytes, wire_len: int = 0) -> ReplayEnd:
        if len(payload) != REPLAY_END_LEN:
            raise ProtocolError(f"REPLAY_END of {len(payload)} bytes, expected {REPLAY_END_LEN}")
        status, first, run, local, offload, sum_local, sum_offload = _REPLAY_END.unpack(payload)
        if status not in REPLAY_STATUS:
            raise ProtocolError(f"REPLAY_END with status {status}")
        if local + offload > run or (status in (REPLAY_NO_TABLE, REPLAY_RANGE) and run):
            raise ProtocolError(f"REPLAY_END counts {local} + {offload} answers of {run} samples ({status})")
        return cls(status, first, run, local, offload, sum_local, sum_offload, wire_len)


Reply = Hello | LocalResult | Offload | ErrorReply | TransferStatus | ReplayEnd


def parse_reply(frame: Frame, expected_intermediate: int | None = None, lean: Hello | None = None) -> Reply | None:
    """Parse a device→host frame. ``None`` for BYE_REPLY; raises ProtocolError otherwise.

    ``lean`` is the device's HELLO_REPLY when the session asked for lean answers; without it a lean
    frame breaks the protocol."""
    if is_lean(frame.type):
        if lean is None or not lean.capabilities & CAP_LEAN:
            raise ProtocolError(f"device sent a lean frame ({name(frame.type)}) the session did not ask for")
        if frame.type == LEAN_LOCAL:
            return LocalResult.parse_lean(frame.payload, frame.wire_len)
        return Offload.parse_lean(frame.type, frame.payload, lean, frame.wire_len)
    if frame.version != 1:
        raise ProtocolError(f"device speaks protocol version {frame.version}; this host speaks 1")
    if frame.type == REPLAY_END:
        return ReplayEnd.parse(frame.payload, frame.wire_len)
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


@functools.lru_cache(maxsize=4096)
def lean_offload_wire_bytes(body_len: int, seq: int = 0) -> int:
    """Bytes of a lean OFFLOAD frame on the wire for an encoded tensor of ``body_len`` bytes (worst case, as
    :func:`offload_wire_bytes`)."""
    from mcuflow.link.frame import encode_lean_frame

    return len(encode_lean_frame(LEAN_OFFLOAD, seq, b"\x01" * body_len))
