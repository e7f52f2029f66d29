"""Byte transports the client talks through.

A transport moves bytes, nothing more: ``write(data)``, ``read(timeout)``
(waits up to ``timeout`` seconds for at least one byte, returns what is there,
``b""`` on timeout) and ``close()``. Framing lives in :mod:`mcuflow.link.frame`.

- :class:`SerialTransport`: any pyserial URL: ``/dev/ttyACM0``, a pty path,
  ``socket://host:port`` (QEMU's ``-serial tcp:...``), ``loop://``.
- :class:`ProcessTransport`: a child process's stdin/stdout (the host-compiled
  device in tests).
- :func:`loopback_pair`: two connected in-memory ends.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import subprocess
import threading
import time
from collections.abc import Sequence

from mcuflow.link.errors import LinkError


class Transport:
    """Base class; subclasses implement ``write``, ``read`` and ``close``."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def self_connected(port_obj) -> bool:
    """True when pyserial's socket reached itself, not QEMU.

    Linux lets a connect to a local port nobody listens on succeed when the kernel picks that same port as
    the source (TCP simultaneous open). Polling QEMU's TCP serial port before it listens can land there: the
    socket then holds QEMU's port, QEMU cannot bind it, and every read returns nothing (seen once as a 60 s
    "no ready" under load, when QEMU is slow to listen and the polling makes more attempts)."""
    sock = getattr(port_obj, "_socket", None)
    if sock is None:
        return False
    try:
        return sock.getsockname() == sock.getpeername()
    except OSError:
        return False


class SerialTransport(Transport):
    """A pyserial port opened with ``serial.serial_for_url``.

    ``connect_timeout`` retries opening (QEMU's TCP serial may not listen yet).
    """

    def __init__(self, url: str, baudrate: int = 115200, connect_timeout: float = 0.0, write_timeout: float = 5.0):
        import serial

        self.url = url
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1, write_timeout=write_timeout)
                if not self_connected(self.port):
                    break
                self.port.close()
                err = OSError("connected to itself, not to a listener")
                if time.monotonic() >= deadline:
                    raise LinkError(f"cannot open port {url}: {err}")
                time.sleep(0.05)
            except (serial.SerialException, OSError, ValueError) as err:
                if time.monotonic() >= deadline:
                    raise LinkError(f"cannot open port {url}: {err}") from None
                time.sleep(0.05)

    @classmethod
    def wrap(cls, port, url: str = "") -> SerialTransport:
        """Use an already open pyserial object (``QemuSession.serial``, say)."""
        self = cls.__new__(cls)
        self.port, self.url = port, url or getattr(port, "portstr", "") or "port"
        return self

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as err:
            raise LinkError(f"writing to {self.url} failed: {err}") from None

    def read(self, timeout: float) -> bytes:
        import serial

        sock = getattr(self.port, "_socket", None)  # socket:// (QEMU): pyserial drops data read before an EOF
        if sock is not None:
            return self._read_socket(sock, timeout)
        try:
            self.port.timeout = max(0.0, timeout)
            data = self.port.read(1)
            if data:
                self.port.timeout = 0  # then take whatever else is already there
                data += self.port.read(4096)
            return bytes(data)
        except (serial.SerialException, OSError) as err:
            raise LinkError(f"reading from {self.url} failed: {err}") from None

    def _read_socket(self, sock, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
            if not ready:
                return b""
            data = sock.recv(4096)
        except OSError as err:
            raise LinkError(f"reading from {self.url} failed: {err}") from None
        if not data:
            raise LinkError(f"{self.url} closed the connection (the device or emulator exited)")
        return data

    def close(self) -> None:
        # Closing a dead port must not mask the real error.
        with contextlib.suppress(Exception):
            self.port.close()


class ProcessTransport(Transport):
    """Talks to a child process over its stdin and stdout (binary, unbuffered)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None, stderr: int | None = None):
        try:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, bufsize=0
            )
        except OSError as err:
            raise LinkError(f"cannot start {argv[0]}: {err}") from None
        self._out = self.proc.stdout.fileno()  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as err:
            raise LinkError(f"device process is gone ({err})") from None

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._out], [], [], max(0.0, timeout))
        if not ready:
            return b""
        data = os.read(self._out, 4096)
        if not data:
            # EOF: wait out the timeout like a silent device would, so callers see a timeout.
            time.sleep(max(0.0, timeout))
        return data

    def close(self, timeout: float = 5.0) -> int | None:  # type: ignore[override]
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=timeout)


class _Pipe:
    def __init__(self) -> None:
        self.buf: collections.deque[bytes] = collections.deque()
        self.cond = threading.Condition()


class LoopbackTransport(Transport):
    """One end of an in-memory, thread-safe byte pipe pair."""

    def __init__(self, rx: _Pipe, tx: _Pipe):
        self._rx, self._tx = rx, tx

    def write(self, data: bytes) -> None:
        with self._tx.cond:
            self._tx.buf.append(bytes(data))
            self._tx.cond.notify_all()

    def read(self, timeout: float) -> bytes:
        with self._rx.cond:
            if not self._rx.buf:
                self._rx.cond.wait(max(0.0, timeout))
            data = b"".join(self._rx.buf)
            self._rx.buf.clear()
            return data


def loopback_pair() -> tuple[LoopbackTransport, LoopbackTransport]:
    a, b = _Pipe(), _Pipe()
    return LoopbackTransport(a, b), LoopbackTransport(b, a)


def open_transport(url: str, baudrate: int = 115200, connect_timeout: float = 0.0) -> Transport:
    """Open the transport a ``--port`` URL names (every pyserial URL form)."""
    return SerialTransport(url, baudrate=baudrate, connect_timeout=connect_timeout)
