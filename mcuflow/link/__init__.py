"""The wire protocol between host and device (docs/protocol.md): COBS framing
with CRC-16, messages, transports and :class:`DeviceClient`."""

from mcuflow.link.client import DeviceClient, LinkStats
from mcuflow.link.errors import DeviceError, LinkError, LinkTimeout, ProtocolError
from mcuflow.link.frame import MAX_ENCODED, MAX_PAYLOAD, Frame, FrameDecoder, FrameDrop, encode_frame, wire_size
from mcuflow.link.messages import ErrorReply, Hello, LocalResult, Offload
from mcuflow.link.transport import (
    LoopbackTransport,
    ProcessTransport,
    SerialTransport,
    Transport,
    loopback_pair,
    open_transport,
)

__all__ = [
    "MAX_ENCODED",
    "MAX_PAYLOAD",
    "DeviceClient",
    "DeviceError",
    "ErrorReply",
    "Frame",
    "FrameDecoder",
    "FrameDrop",
    "Hello",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "LocalResult",
    "LoopbackTransport",
    "Offload",
    "ProcessTransport",
    "ProtocolError",
    "SerialTransport",
    "Transport",
    "encode_frame",
    "loopback_pair",
    "open_transport",
    "wire_size",
]
