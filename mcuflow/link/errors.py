"""Link errors. All are user-facing (:class:`McuflowError`): a dead port or a
confused device is an environment problem, not a bug in mcuflow."""

from __future__ import annotations

from mcuflow.errors import LinkError, ProtocolError

__all__ = ["DeviceError", "LinkError", "LinkTimeout", "ProtocolError", "error_name"]


class LinkTimeout(LinkError):
    """No (valid) answer arrived in time."""


class DeviceError(LinkError):
    """The device answered with an ERROR message."""

    def __init__(self, code: int, text: str, seq: int | None = None):
        self.code = code
        self.text = text
        self.seq = seq
        super().__init__(f"device error {code} ({error_name(code)}): {text}")


ERROR_NAMES = {
    1: "BAD_VERSION",
    2: "BAD_TYPE",
    3: "BAD_LENGTH",
    4: "BAD_TENSOR_SIZE",
    5: "HEAD_FAILED",
    6: "INTERNAL",
}


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, "UNKNOWN")
