"""A Python stand-in for the device side of the protocol, on an in-memory transport.

It follows docs/protocol.md like ``firmware/app/serve.c`` does (drops bad frames,
answers ERROR to good frames with bad content, deduplicates retries, reassembles
fragmented requests), so host code can be tested without a compiler or an emulator:

    dev = SimDevice(head=lambda x: LocalResult(0, 3, 30000, 100), model_hash=b"\\0" * 32)
    client = DeviceClient(SimTransport(dev))
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from mcuflow.codec import encodings
from mcuflow.link import messages as m
from mcuflow.link.errors import ProtocolError
from mcuflow.link.frame import MAX_PAYLOAD, FrameDecoder, encode_frame, encode_lean_frame
from mcuflow.link.transport import Transport

Head = Callable[[np.ndarray], "m.LocalResult | m.Offload | None"]  # None: the head failed


class SimDevice:
    def __init__(
        self,
        head: Head,
        model_hash: bytes,
        input_len: int = 784,
        intermediate_len: int = 40,
        num_classes: int = 10,
        num_exits: int = 1,
        board: str = "sim",
        lean: tuple[int, int, float] | None = None,
        replay_table: np.ndarray | None = None,
    ):
        """``lean``: (bits, zero point, scale) of every OFFLOAD, to offer lean answers (capability bit 14);
        ``replay_table``: (N, input_len) int8 inputs, to serve REPLAY (bit 15)."""
        self.head = head
        caps = 1 | m.CAP_DEDUP | m.CAP_BYE | m.CAP_INFER_SPARSE | m.CAP_FRAGMENT
        caps |= (m.CAP_LEAN if lean else 0) | (m.CAP_REPLAY if replay_table is not None else 0)
        self.table = None if replay_table is None else np.asarray(replay_table, np.int8).reshape(-1, input_len)
        self.hello = m.Hello(
            (0, 1), caps, input_len, intermediate_len, num_classes, num_exits,
            MAX_PAYLOAD, 0, bytes(model_hash), board,
            lean_bits=lean[0] if lean else None, lean_zero_point=lean[1] if lean else None,
            lean_scale=lean[2] if lean else None, replay_count=None if self.table is None else len(self.table),
        )  # fmt: skip
        self.lean = False  # the host asked for lean answers in its last HELLO
        self.decoder = FrameDecoder(strict_length=False, lean=False)
        self.head_runs = 0
        self.exited = False
        self.parts_dropped = 0
        self._last: tuple[int, int, bytes] | None = None  # (type, seq, request bytes)
        self._last_reply = b""
        self._last_answer: tuple[int, bytes] = (0, b"")  # (type, payload) of the last reply
        self._xfer = _Transfer(input_len)

    def reset(self) -> None:
        """A reboot: the half-received frame, the dedup cache, the transfer and the drop counter are gone."""
        self.decoder = FrameDecoder(strict_length=False, lean=False)
        self.lean = False
        self._last, self._last_reply = None, b""
        self._xfer = _Transfer(self.hello.input_len)
        self.parts_dropped = 0
        self.resets = getattr(self, "resets", 0) + 1

    def feed(self, data: bytes) -> bytes:
        """Bytes in, reply bytes out."""
        out = bytearray()
        for item in self.decoder.feed(data):
            if hasattr(item, "reason"):
                continue  # dropped silently, as on the device
            out += self._handle(item)
        return bytes(out)

    def _handle(self, f) -> bytes:
        key = (f.type, f.seq, f.payload)
        if f.type != m.HELLO and self._last == key:
            return self._last_reply
        if f.type == m.INFER_PART and f.version == 1:
            self._part(f.payload)
            return b""  # parts are never answered and leave the reply cache alone
        self._end_frame = None
        reply = self._answer(f)
        self._last = key if f.type != m.HELLO else None
        # A REPLAY's reply is its REPLAY_END alone: a resent REPLAY gets that, not the run again.
        self._last_reply = reply if self._end_frame is None else self._end_frame
        return reply

    def _reply(self, msg_type: int, seq: int, payload: bytes = b"") -> bytes:
        self._xfer.answered = False  # this reply replaces whatever the cache held
        self._last_answer = (msg_type, payload)
        if self.lean and msg_type == m.LOCAL_RESULT:
            return encode_lean_frame(m.LEAN_LOCAL, seq, payload[: m.LEAN_LOCAL_LEN])
        if self.lean and msg_type == m.OFFLOAD:
            return encode_lean_frame(m.LEAN_OFFLOAD + payload[0], seq, payload[m.OFFLOAD_FIXED_LEN :])
        return encode_frame(msg_type, seq, payload)

    def _error(self, seq: int, code: int, text: str) -> bytes:
        return self._reply(m.ERROR, seq, m.ErrorReply(code, text).pack())

    def _part(self, payload: bytes) -> None:
        try:
            tid, index, count, offset, data = m.parse_part(payload)
        except ProtocolError:
            self.parts_dropped += 1
            return
        x = self._xfer
        if offset + len(data) > len(x.body):
            self.parts_dropped += 1
            return
        if (x.id, x.count) != (tid, count):
            x.start(tid, count)  # a new transfer id discards the old partial transfer
        x.body[offset : offset + len(data)] = data
        if index not in x.have:
            x.have.add(index)
            x.bytes += len(data)
            if self._last_answer[0] == m.XFER_STATUS:
                self._last = None  # a cached "still missing" is out of date now

    def _commit(self, f) -> bytes:
        try:
            tid, count, inner, total, check = m.parse_commit(f.payload)
        except ProtocolError:
            return self._error(f.seq, 3, "commit size")
        x = self._xfer
        if not 0 < count <= m.XFER_MAX_PARTS or not 0 < total <= len(x.body) or inner not in (m.INFER, m.INFER_SPARSE):
            return self._error(f.seq, 4, "commit fields")
        if x.answered and x.committed == (tid, count, inner, total, check):
            kind, payload = self._last_answer
            reply = self._reply(kind, f.seq, payload)  # the same answer re-stamped, not recomputed
            x.answered = True
            return reply
        if (x.id, x.count) != (tid, count):
            x.start(tid, count)
        missing = [i for i in range(count) if i not in x.have]
        if missing:
            return self._reply(
                m.XFER_STATUS, f.seq, m.TransferStatus(tid, count, m.XFER_MISSING, tuple(missing)).pack()
            )
        body = bytes(x.body[:total])
        if x.bytes != total or m.body_check(inner, body) != check:
            x.start(tid, count)  # a part was wrong; which one is unknown: start over
            status = m.TransferStatus(tid, count, m.XFER_BAD_CHECK, tuple(range(count)))
            return self._reply(m.XFER_STATUS, f.seq, status.pack())
        reply = self._infer(f.seq, inner, body)
        x.answered, x.committed = True, (tid, count, inner, total, check)
        return reply

    def _answer(self, f) -> bytes:
        if f.version != 1:
            return self._error(f.seq, 1, "version")
        if f.type in (m.HELLO, m.BYE):
            if f.payload and not (f.type == m.HELLO and len(f.payload) == 4):
                return self._error(f.seq, 3, "payload size")
            if f.type == m.BYE:
                self.exited = True
                return self._reply(m.BYE_REPLY, f.seq)
            self._xfer.start(-1, 0)  # a new session: no transfer survives it
            options = int.from_bytes(f.payload, "little") if f.payload else 0
            self.lean = bool(options & m.CAP_LEAN and self.hello.capabilities & m.CAP_LEAN)
            hello = self.hello
            dropped = sum(self.decoder.drops.values()) + self.parts_dropped
            d = hello.__dict__ | {"frames_dropped": dropped, "wire_len": 0}
            return self._reply(m.HELLO_REPLY, f.seq, m.Hello(**d).pack())
        if f.type == m.INFER_COMMIT:
            return self._commit(f)
        if f.type == m.REPLAY:
            return self._replay(f)
        if f.type in (m.INFER, m.INFER_SPARSE):
            self._xfer.start(-1, 0)  # the input buffer is about to be overwritten
            return self._infer(f.seq, f.type, f.payload)
        return self._error(f.seq, 2, "type")

    def _replay(self, f) -> bytes:
        """REPLAY: every asked sample's answer (seq = its index), then REPLAY_END, the request's own reply.
        The run always ends before the next frame is read (the C device stops at a frame arriving mid-run)."""
        try:
            first, count, _period = m.parse_replay(f.payload)
        except ProtocolError:
            return self._error(f.seq, 3, "replay size")
        self._xfer.start(-1, 0)  # the input buffer is about to be overwritten
        table = self.table
        status = m.REPLAY_DONE
        if table is None or not len(table):
            status = m.REPLAY_NO_TABLE
        elif first > len(table) or count > len(table) - first:
            status = m.REPLAY_RANGE
        out = bytearray()
        run = n_local = n_offload = sum_local = sum_offload = 0
        for i in range(first, first + count) if status == m.REPLAY_DONE else ():
            self.head_runs += 1
            res = self.head(table[i])
            run += 1
            if res is None:
                out += self._error(i & 0xFFFF, 5, "head failed")
                continue
            local = isinstance(res, m.LocalResult)
            n_local, n_offload = n_local + local, n_offload + (not local)
            sum_local += res.instructions if local else 0
            sum_offload += 0 if local else res.instructions
            out += self._reply(m.LOCAL_RESULT if local else m.OFFLOAD, i & 0xFFFF, res.pack())
        end = m.ReplayEnd(status, first, run, n_local, n_offload, sum_local, sum_offload)
        self._end_frame = self._reply(m.REPLAY_END, f.seq, end.pack())
        return bytes(out) + self._end_frame

    def _infer(self, seq: int, msg_type: int, body: bytes) -> bytes:
        if msg_type == m.INFER_SPARSE:
            try:
                if len(body) < 2 or body[0] != encodings.BITMAP:
                    raise ProtocolError("bad encoding")
                fill = body[1] - 256 if body[1] > 127 else body[1]
                x = encodings.bitmap_decode(body[2:], self.hello.input_len, fill)
            except ProtocolError:
                return self._error(seq, 4, "sparse input")
        else:
            if len(body) != self.hello.input_len:
                return self._error(seq, 4, "input size")
            x = np.frombuffer(body, dtype=np.int8)
        self.head_runs += 1
        res = self.head(x)
        if res is None:
            return self._error(seq, 5, "head failed")
        kind = m.LOCAL_RESULT if isinstance(res, m.LocalResult) else m.OFFLOAD
        return self._reply(kind, seq, res.pack())


class _Transfer:
    """The one fragmented request being reassembled (serve.c's serve_transfer_t)."""

    def __init__(self, input_len: int):
        self.body = bytearray(input_len)
        self.start(-1, 0)

    def start(self, tid: int, count: int) -> None:
        self.id, self.count = tid, count
        self.have: set[int] = set()
        self.bytes = 0
        self.answered = False
        self.committed: tuple[int, ...] = ()


class SimTransport(Transport):
    """The host's end of a link to a :class:`SimDevice`; ``fault`` may rewrite bytes both ways."""

    def __init__(self, device: SimDevice, fault: Callable[[str, bytes], bytes] | None = None):
        self.device = device
        self.fault = fault or (lambda direction, data: data)
        self._rx = bytearray()

    def write(self, data: bytes) -> None:
        if self.device.exited:
            return
        self._rx += self.fault("up", self.device.feed(self.fault("down", bytes(data))))

    def read(self, timeout: float) -> bytes:
        data, self._rx = bytes(self._rx), bytearray()
        if not data:
            time.sleep(max(0.0, timeout))  # the device is synchronous: nothing more will come
        return data
