"""Run firmware under qemu-system-arm with the board's UART on a local TCP socket.

``QemuSession`` is a context manager: it starts QEMU (``-icount shift=0`` for deterministic
instruction counts, semihosting so the firmware can exit with a status), connects pyserial to
``socket://127.0.0.1:PORT`` and ALWAYS kills its QEMU on exit, even when the body raises; a
finalizer (run at interpreter exit too) is the backstop for sessions that are never closed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import serial

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, ToolchainError
from mcuflow.link.transport import self_connected

QEMU = "qemu-system-arm"
INSTALL_HINT = "install it with `apt-get install qemu-system-arm` (Debian/Ubuntu)"
STM32_SETTLE_SECONDS = 0.5


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise ToolchainError(f"{QEMU} not found on PATH; {INSTALL_HINT}")
    return path


def machine_for(board: Board, emulate: bool = False):
    """The board's QEMU machine: its own, or with `emulate` a hardware board's stand-in ([emulation])."""
    machine = board.emulator(emulate)
    if machine is None:
        hint = ""
        if board.emulation is not None:
            hint = f"; its own image runs on QEMU {board.emulation.machine}, its stand-in, with --emulate"
        raise ConfigError(f"board {board.name!r} is hardware, not a QEMU machine (no [qemu] table){hint}")
    return machine


def qemu_command(
    board: Board, elf: Path, serial_spec: str, emulate: bool = False, replay_table: Path | None = None
) -> list[str]:
    """The QEMU command line for `board`; `serial_spec` is a -serial chardev (e.g. tcp:...).

    With `emulate`, a hardware board's image runs on its stand-in machine. That image has no
    semihosting (BYE parks the core): the session ends when the host kills QEMU. `replay_table` (an
    input table file, mcuflow.link.replay.table_bytes) is loaded into the board's replay region before
    the firmware starts."""
    machine = machine_for(board, emulate)
    cmd = [qemu_binary(), "-machine", machine.machine, "-nographic", "-monitor", "none"]
    # The board's UART is the serial_index-th -serial: fill the ones before it with null.
    for _ in range(machine.serial_index):
        cmd += ["-serial", "null"]
    cmd += ["-serial", serial_spec, "-kernel", str(elf), "-icount", "shift=0"]
    cmd += ["-semihosting-config", "enable=on,target=native"]
    if replay_table is not None:
        if not machine.replay_bytes:
            raise ConfigError(f"board {board.name} has no replay region ([qemu] replay_addr) for an input table")
        size = Path(replay_table).stat().st_size
        if size > machine.replay_bytes:
            raise ConfigError(
                f"the input table ({size:,} bytes) does not fit {board.name}'s replay region of "
                f"{machine.replay_bytes:,} bytes"
            )
        # QEMU's generic loader writes the file's bytes at the address before the CPU starts.
        cmd += ["-device", f"loader,file={replay_table},addr=0x{machine.replay_addr:X},force-raw=on"]
    return cmd


def pin_to_cpu(index: int | None) -> list[str]:
    """A ``taskset`` prefix keeping all of QEMU's threads on one host CPU (the ``index``-th one
    this process may use), or nothing when ``index`` is None or taskset is missing.

    Every byte on the emulated UART is a hand-over between QEMU's I/O thread and its vCPU
    thread; on one core that is a context switch, across cores it is a wake-up of an idle core,
    which made a session 3-4x slower on a 2-core virtual machine (measured: 41 -> 176 samples/s).
    """
    taskset = shutil.which("taskset")
    if index is None or taskset is None:
        return []
    cpus = sorted(os.sched_getaffinity(0))
    return [taskset, "-c", str(cpus[index % len(cpus)])]


@contextlib.contextmanager
def thread_on_cpu(index: int | None):
    """Keep the calling thread on the same host CPU as ``pin_to_cpu(index)``: the host side of
    a request/reply session then hands over to QEMU without waking another core either."""
    if index is None or not hasattr(os, "sched_setaffinity") or shutil.which("taskset") is None:
        yield
        return
    before = os.sched_getaffinity(0)  # pid 0: this thread only, on Linux
    cpus = sorted(before)
    try:
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, before)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_nodelay(port_obj: serial.SerialBase) -> None:
    """Disable Nagle on pyserial's socket:// port (it keeps the socket in ``_socket``)."""
    sock = getattr(port_obj, "_socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class QemuSession:
    """A running QEMU with the firmware's UART as `self.serial` (a pyserial object).

    >>> with QemuSession(elf, "qemu-mps2-an386") as q:
    ...     q.read_until(b"ready\\n")
    """

    def __init__(
        self,
        elf: str | Path,
        board: str | Path | Board,
        *,
        boot_timeout: float = 10.0,
        read_timeout: float = 5.0,
        cpu: int | None = 0,
        emulate: bool = False,
        replay_table: str | Path | None = None,
        boot_token: bytes | None = None,
        boot_attempts: int = 2,
    ):
        self.elf = Path(elf)
        # Firmware that prints `boot_token` at reset (the selftest's "ready"): start() reads up to it and
        # starts QEMU afresh when it does not come. Under load QEMU 7.2 sometimes accepts the connection
        # yet the reset output never reaches it (measured: 5 of 559 starts beside three CPU burners).
        self.boot_token = boot_token
        self.boot_attempts = boot_attempts
        self.boot_text = b""
        self.replay_table = None if replay_table is None else Path(replay_table)
        self.cpu = cpu
        self.board = board if isinstance(board, Board) else load_board(board)
        self.emulate = emulate
        self.machine = machine_for(self.board, emulate)
        self.boot_timeout = boot_timeout
        self.read_timeout = read_timeout
        self.process: subprocess.Popen | None = None
        self.serial: serial.SerialBase | None = None
        self.url: str | None = None
        self._log = None
        self._finalizer = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> QemuSession:
        if self.boot_token is None:
            return self._start()
        for attempt in range(self.boot_attempts):
            self._start()
            try:
                self.boot_text = self.read_until(self.boot_token)
                return self
            except ToolchainError:
                self.stop()
                if attempt == self.boot_attempts - 1:
                    raise
        return self

    def _start(self) -> QemuSession:
        qemu_binary()  # a missing emulator is the first thing to report
        if not self.elf.is_file():
            raise ConfigError(f"firmware not found: {self.elf}")
        with open(self.elf, "rb") as f:
            if f.read(4) != b"\x7fELF":  # QEMU would only say so after the serial client connects
                raise ConfigError(f"{self.elf} is not an ELF file (build it with `mcuflow build`)")
        last_err = ""
        for _attempt in range(3):  # a free port can be taken between probing and QEMU binding it
            port = _free_port()
            # nodelay: request/reply frames are small; Nagle + delayed ACK would add ~40 ms each way.
            spec = f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"
            self._log = tempfile.TemporaryFile()  # noqa: SIM115  closed by stop(); a file, unlike a pipe, never fills up
            self.process = subprocess.Popen(
                pin_to_cpu(self.cpu) + qemu_command(self.board, self.elf, spec, self.emulate, self.replay_table),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                start_new_session=True,  # own process group: killpg reaches everything it spawns
            )
            self._finalizer = weakref.finalize(self, _kill_group, self.process)
            try:
                self.serial = self._connect(port)
                self.url = f"socket://127.0.0.1:{port}"
                if self.board.uart.driver.startswith("stm32"):
                    # QEMU's STM32 USART model drops bytes that arrive before the firmware sets
                    # UE/RE (the CMSDK model holds them): let the guest boot before the host talks.
                    time.sleep(STM32_SETTLE_SECONDS)
                return self
            except ToolchainError as err:
                last_err = str(err)
                self.stop()
                if "in use" not in last_err:
                    raise
        raise ToolchainError(last_err)

    def _connect(self, port: int) -> serial.SerialBase:
        """QEMU's wait=on holds the guest until we connect, so no early output is lost."""
        deadline = time.monotonic() + self.boot_timeout
        while True:
            if self.process.poll() is not None:
                raise ToolchainError(f"QEMU exited with status {self.process.returncode}: {self.stderr_text()}")
            try:
                port_obj = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=self.read_timeout)
                if self_connected(port_obj):
                    port_obj.close()
                    raise serial.SerialException("connected to itself")
                _set_nodelay(port_obj)
                return port_obj
            except serial.SerialException:
                if time.monotonic() > deadline:
                    raise ToolchainError(
                        f"QEMU did not open its serial port within {self.boot_timeout:.0f} s: {self.stderr_text()}"
                    ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.serial is not None:
            with contextlib.suppress(Exception):
                self.serial.close()
            self.serial = None
        if self.process is not None:
            _kill_group(self.process)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> QemuSession:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stderr_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return " | ".join(self._log.read().decode(errors="replace").strip().splitlines())[-2000:]

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def read_until(self, token: bytes, timeout: float | None = None) -> bytes:
        """Read until `token` (inclusive) or raise ToolchainError on timeout/QEMU exit."""
        timeout = self.read_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while not buf.endswith(token):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ToolchainError(
                    f"no {token!r} from the firmware within {timeout:.1f} s; got {bytes(buf)[-200:]!r}"
                )
            self.serial.timeout = min(remaining, 0.5)
            try:
                chunk = self.serial.read(1)
            except serial.SerialException:
                raise ToolchainError(
                    f"QEMU closed the serial port before {token!r}; got {bytes(buf)[-200:]!r}"
                ) from None
            if not chunk and self.process is not None and self.process.poll() is not None:
                raise ToolchainError(
                    f"QEMU exited with status {self.process.returncode} before {token!r}; got {bytes(buf)[-200:]!r}: "
                    f"{self.stderr_text()}"
                )
            buf += chunk
        return bytes(buf)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the firmware to exit (semihosting); returns QEMU's exit status."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"the firmware did not exit within {timeout:.0f} s") from None
