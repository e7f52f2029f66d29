"""The host side of a session: :class:`DeviceClient`.

    with open_transport("socket://127.0.0.1:4321", connect_timeout=5) as t:
        dev = DeviceClient(t, timeout=2.0, retries=2)
        info = dev.hello()                     # Hello: board, model hash, lengths
        reply = dev.infer(x_int8)              # LocalResult | Offload
        dev.bye()                              # device calls platform_exit(0)

Every read has a deadline. A retry resends the identical frame (same sequence
number); the device answers a repeat from its cache without recomputing. Replies
to other sequence numbers (late answers to an abandoned request) are ignored and
counted in ``stats.stale``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mcuflow.codec import encodings
from mcuflow.errors import DataError
from mcuflow.link import messages as m
from mcuflow.link.errors import DeviceError, LinkError, LinkTimeout, ProtocolError
from mcuflow.link.frame import Frame, FrameDecoder, FrameDrop, encode_frame
from mcuflow.link.transport import Transport


@dataclass
class LinkStats:
    requests: int = 0
    replies: int = 0
    frames_sent: int = 0  # host -> device, every resend, part and COMMIT copy included
    bytes_down: int = 0  # host -> device, on the wire (retries included)
    bytes_up: int = 0  # device -> host, on the wire (everything received)
    retries: int = 0
    timeouts: int = 0
    stale: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**self.__dict__, "dropped": dict(self.dropped)}


RetryHook = Callable[[int, int, int], None]  # (attempt, msg_type, seq)
# The frame types that may answer each request. A replay's answers carry sample indices as their seq, so a
# seq alone could also name one of those still in flight when a HELLO stops a run.
_ANSWERS = frozenset([m.LOCAL_RESULT, m.OFFLOAD, m.LEAN_LOCAL, *range(m.LEAN_OFFLOAD, m.LEAN_OFFLOAD + 8)])
REPLY_TYPES = {
    m.HELLO: frozenset([m.HELLO_REPLY, m.ERROR]),
    m.BYE: frozenset([m.BYE_REPLY, m.ERROR]),
    m.INFER: _ANSWERS | {m.ERROR},
    m.INFER_SPARSE: _ANSWERS | {m.ERROR},
}


def _reply_to(msg_type: int, seq: int) -> Callable[[Frame], bool]:
    """Accepts the frames that can answer request ``msg_type`` sent under ``seq``."""
    types = REPLY_TYPES.get(msg_type)
    return lambda frame: frame.seq == seq and (types is None or frame.type in types)


BAD_LENGTH = 3  # the ERROR code an older device answers a HELLO with options


class DeviceClient:
    """Request/reply over a :class:`Transport` (see the module docstring).

    ``timeout`` bounds the wait for each attempt, ``retries`` is the number of
    resends after a timeout, ``on_retry`` is called before each resend.
    """

    def __init__(
        self,
        transport: Transport,
        timeout: float = 2.0,
        retries: int = 0,
        on_retry: RetryHook | None = None,
        first_seq: int = 1,
        sparse_inputs: bool | None = None,
        lean: bool = False,
    ):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.on_retry = on_retry
        # None: send INFER_SPARSE when the device supports it and it is smaller.
        self.sparse_inputs = sparse_inputs
        # Ask for lean answers (capability bit 14) in every HELLO; `lean_active` says whether the device took it.
        self.lean = lean
        self.lean_active = False
        self.info: m.Hello | None = None
        self.stats = LinkStats()
        self.last_request_wire_len = 0
        self._seq = first_seq & 0xFFFF
        self._decoder = FrameDecoder()
        self._pending: list[Frame] = []
        # A lone delimiter ends whatever half frame the device may still hold.
        self.transport.write(b"\x00")

    def next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        return seq

    # -- messages ---------------------------------------------------------

    def hello(self, timeout: float | None = None, retries: int | None = None) -> m.Hello:
        """Start (or restart) the session. With ``lean`` the HELLO asks for lean answers; a device that
        does not know HELLO options (older firmware: ERROR BAD_LENGTH) is asked again without them."""
        options = m.hello_options(m.CAP_LEAN) if self.lean else b""
        try:
            frame = self.request(m.HELLO, options, timeout=timeout, retries=retries)
            reply = self._parse(frame)
        except DeviceError as err:
            if not options or err.code != BAD_LENGTH:
                raise
            frame = self.request(m.HELLO, b"", timeout=timeout, retries=retries)
            reply = self._parse(frame)
            options = b""
        if not isinstance(reply, m.Hello):
            raise ProtocolError(f"HELLO answered with {m.name(frame.type)}")
        self.info = reply
        self.lean_active = bool(options) and bool(reply.capabilities & m.CAP_LEAN)
        return reply

    def infer(
        self, x: np.ndarray, timeout: float | None = None, retries: int | None = None
    ) -> m.LocalResult | m.Offload:
        """Send one int8 input; raises DeviceError on an ERROR reply, LinkTimeout on none."""
        msg_type, payload = self.infer_request(x)
        frame = self.request(msg_type, payload, timeout=timeout, retries=retries)
        return self._answer(frame)

    def _answer(self, frame: Frame) -> m.LocalResult | m.Offload:
        """The verified answer an INFER frame carries (ProtocolError when it breaks the protocol)."""
        reply = self._parse(frame)
        if isinstance(reply, m.LocalResult):
            if self.info is not None:
                if reply.label >= self.info.num_classes:
                    raise ProtocolError(f"LOCAL_RESULT class {reply.label} >= {self.info.num_classes} classes")
                if reply.exit_index >= max(1, self.info.num_exits):
                    raise ProtocolError(f"LOCAL_RESULT exit {reply.exit_index} >= {self.info.num_exits} exits")
            return reply
        if isinstance(reply, m.Offload):
            return reply
        raise ProtocolError(f"INFER answered with {m.name(frame.type)}")

    def bye(self, timeout: float | None = None) -> bool:
        """Ask the device to exit. True if it confirmed; False if the link closed first
        (the device exits right after its reply, and an emulator may close the socket
        before the reply is read)."""
        try:
            frame = self.request(m.BYE, b"", timeout=timeout, retries=0)
        except LinkTimeout:
            raise
        except LinkError:
            return False
        self._parse(frame)
        if frame.type != m.BYE_REPLY:
            raise ProtocolError(f"BYE answered with {m.name(frame.type)}")
        return True

    def infer_request(self, x: np.ndarray) -> tuple[int, bytes]:
        """(message type, payload) for input ``x``: INFER, or INFER_SPARSE (bitmap) if enabled and smaller."""
        dense = self.input_payload(x)
        supported = self.info is not None and bool(self.info.capabilities & m.CAP_INFER_SPARSE)
        if self.sparse_inputs is False or (self.sparse_inputs is None and not supported):
            return m.INFER, dense
        a = np.frombuffer(dense, dtype=np.int8)
        fill = int(np.bincount(a.view(np.uint8), minlength=256).argmax())  # most common byte: fewest values
        fill = fill - 256 if fill > 127 else fill
        if self.sparse_inputs is None and 2 + encodings.bitmap_size(a, fill) >= len(dense):
            return m.INFER, dense
        return m.INFER_SPARSE, bytes([encodings.BITMAP, fill & 0xFF]) + encodings.bitmap_encode(a, fill)

    def input_payload(self, x: np.ndarray) -> bytes:
        a = np.asarray(x)
        if a.dtype != np.int8:
            raise DataError(f"device inputs must be int8 (quantised), got {a.dtype}")
        if self.info is not None and a.size != self.info.input_len:
            raise DataError(f"input has {a.size} elements, the device expects {self.info.input_len}")
        return a.reshape(-1).tobytes()

    def _parse(self, frame: Frame) -> m.Reply | None:
        expected = self.info.intermediate_len if self.info is not None else None
        reply = m.parse_reply(frame, expected_intermediate=expected, lean=self.info if self.lean_active else None)
        if isinstance(reply, m.ErrorReply):
            raise reply.to_exception(frame.seq)
        return reply

    # -- request / reply --------------------------------------------------

    def request(
        self, msg_type: int, payload: bytes = b"", timeout: float | None = None, retries: int | None = None
    ) -> Frame:
        """Send one request and return the reply frame with its sequence number."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        seq = self.next_seq()
        wire = encode_frame(msg_type, seq, payload)
        self.last_request_wire_len = len(wire)
        self.stats.requests += 1
        for attempt in range(retries + 1):
            if attempt:
                self.stats.retries += 1
                if self.on_retry is not None:
                    self.on_retry(attempt, msg_type, seq)
            self.transport.write(wire)
            self.stats.bytes_down += len(wire)
            self.stats.frames_sent += 1
            frame = self._wait(_reply_to(msg_type, seq), timeout)
            if frame is not None:
                self.stats.replies += 1
                return frame
            self.stats.timeouts += 1
        tries = f" after {retries + 1} attempts" if retries else ""
        raise LinkTimeout(f"no answer to {m.name(msg_type)} (seq {seq}) within {timeout:g} s{tries}")

    def send(self, wire: bytes, frames: int = 1) -> None:
        """Put ``frames`` frames already encoded on the wire, counted in the stats."""
        self.transport.write(wire)
        self.stats.bytes_down += len(wire)
        self.stats.frames_sent += frames

    def next_frame(self, timeout: float) -> Frame | None:
        """The next frame the device sends, whatever its sequence number; None after ``timeout`` s of silence."""
        return self._wait(lambda frame: True, timeout)

    def parse(self, frame: Frame) -> m.Reply | None:
        """A received frame as its message, checked against the session (lean answers included)."""
        return self._parse(frame)

    def answer(self, frame: Frame) -> m.LocalResult | m.Offload:
        """The verified answer a frame carries: DeviceError for an ERROR, ProtocolError when it breaks the protocol."""
        return self._answer(frame)

    def _wait(self, seq: int | Callable[[Frame], bool], timeout: float) -> Frame | None:
        """The next frame with sequence number ``seq`` (or that ``seq(frame)`` accepts); others are stale."""
        accept = seq if callable(seq) else (lambda f: f.seq == seq)
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                if accept(frame):
                    return frame
                self.stats.stale += 1
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(left)
            if not data:
                continue
            self.stats.bytes_up += len(data)
            for item in self._decoder.feed(data):
                if isinstance(item, FrameDrop):
                    self.stats.dropped[item.reason] = self.stats.dropped.get(item.reason, 0) + 1
                else:
                    self._pending.append(item)
