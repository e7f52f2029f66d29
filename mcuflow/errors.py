"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class McuflowError(Exception):
    """An error caused by the user's input or environment, not by a bug."""

    exit_code = 1


class ConfigError(McuflowError, ValueError):
    """A model, board or export configuration that cannot be honoured."""


class CheckpointError(McuflowError):
    """A checkpoint file that is missing, corrupt, truncated or not mcuflow's."""


class DataError(McuflowError):
    """A dataset that is missing, corrupt or of the wrong shape."""


class ToolchainError(McuflowError):
    """A compiler, emulator or flasher that is missing or failed."""


class ImageCheckError(McuflowError):
    """A firmware image that does not fit its board (mcuflow.imagecheck): refused before it is flashed."""


class LinkError(McuflowError):
    """The link to the device failed (port, framing, protocol)."""


class ProtocolError(LinkError):
    """Bytes that break docs/protocol.md: a frame, a message or a tensor encoding.

    Defined here, not in :mod:`mcuflow.link`, because the tensor codecs (:mod:`mcuflow.codec`) sit below
    the protocol and raise it too."""
