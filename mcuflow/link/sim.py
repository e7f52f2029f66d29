"""A Python stand-in for the device side of the protocol, on an in-memory transport.

It follows docs/protocol.md like ``firmware/app/serve.c`` does (drops bad frames,
answers ERROR to good frames with bad content, deduplicates retries), so host code
can be tested without a compiler or an emulator:

    dev = SimDevice(head=lambda x: LocalResult(0, 3, 30000, 100), model_hash=b"\\0" * 32)
    client = DeviceClient(SimTransport(dev))
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from mcuflow.link import encodings
from mcuflow.link import messages as m
from mcuflow.link.errors import ProtocolError
from mcuflow.link.frame import MAX_PAYLOAD, FrameDecoder, encode_frame
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
    ):
        self.head = head
        self.hello = m.Hello(
            (0, 1), 1 | m.CAP_DEDUP | m.CAP_BYE | m.CAP_INFER_SPARSE, input_len, intermediate_len, num_classes, num_exits,
            MAX_PAYLOAD, 0, bytes(model_hash), board,
        )  # fmt: skip
        self.decoder = FrameDecoder(strict_length=False)
        self.head_runs = 0
        self.exited = False
        self._last: tuple[int, int, bytes] | None = None  # (type, seq, request bytes)
        self._last_reply = b""

    def reset(self) -> None:
        """A reboot: the half-received frame, the dedup cache and the drop counter are gone."""
        self.decoder = FrameDecoder(strict_length=False)
        self._last, self._last_reply = None, b""
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
        reply = self._answer(f)
        self._last = key if f.type != m.HELLO else None
        self._last_reply = reply
        return reply

    def _error(self, seq: int, code: int, text: str) -> bytes:
        return encode_frame(m.ERROR, seq, m.ErrorReply(code, text).pack())

    def _answer(self, f) -> bytes:
        if f.version != 1:
            return self._error(f.seq, 1, "unsupported protocol version")
        if f.type in (m.HELLO, m.BYE):
            if f.payload:
                return self._error(f.seq, 3, "HELLO and BYE carry no payload")
            if f.type == m.BYE:
                self.exited = True
                return encode_frame(m.BYE_REPLY, f.seq)
            hello = self.hello
            d = hello.__dict__ | {"frames_dropped": sum(self.decoder.drops.values()), "wire_len": 0}
            return encode_frame(m.HELLO_REPLY, f.seq, m.Hello(**d).pack())
        if f.type == m.INFER_SPARSE:
            try:
                if len(f.payload) < 2 or f.payload[0] != encodings.BITMAP:
                    raise ProtocolError("bad encoding")
                fill = f.payload[1] - 256 if f.payload[1] > 127 else f.payload[1]
                x = encodings.bitmap_decode(f.payload[2:], self.hello.input_len, fill)
            except ProtocolError:
                return self._error(f.seq, 4, "INFER_SPARSE encoding is malformed")
        elif f.type == m.INFER:
            if len(f.payload) != self.hello.input_len:
                return self._error(f.seq, 4, "INFER payload is not input_len bytes")
            x = np.frombuffer(f.payload, dtype=np.int8)
        else:
            return self._error(f.seq, 2, "unknown message type")
        self.head_runs += 1
        res = self.head(x)
        if res is None:
            return self._error(f.seq, 5, "mcuflow_head_run failed")
        kind = m.LOCAL_RESULT if isinstance(res, m.LocalResult) else m.OFFLOAD
        return encode_frame(kind, f.seq, res.pack())


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
