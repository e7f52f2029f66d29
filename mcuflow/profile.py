"""Per-layer instruction counts from the device's own counter (the selftest firmware under QEMU).

The selftest app (firmware/selftest/selftest.c) answers one-letter commands: ``c`` calibrates the
counter, ``b`` times whole head inferences and ``l`` times one layer of the generated layer table
(head layers first, then each exit's). Counts are instructions under QEMU ``-icount``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, LinkError, ToolchainError

CALIBRATION_RUNS = 100_000


class SelftestDevice:
    """A selftest firmware, used as a context manager: under QEMU (its own machine, or with
    `emulate` a hardware board's stand-in), or on a board through `session`, an open serial
    session with ``write`` and ``read_until`` (:class:`mcuflow.bringup.SerialSession`), which is
    asked for the banner again ('?') since the board printed it before the host listened.

    ``banner`` is the text before ``ready``: the banner line and the built-in input's result.
    The counter is calibrated where it counts instructions (QEMU boards)."""

    def __init__(
        self,
        elf: str | Path | None,
        board: str | Board,
        reply_timeout: float = 60.0,
        *,
        emulate: bool = False,
        session=None,
    ):
        self.elf, self.reply_timeout, self.emulate = None if elf is None else Path(elf), reply_timeout, emulate
        self.board = board if isinstance(board, Board) else load_board(board)
        self.external = session
        self.banner = b""

    def __enter__(self) -> SelftestDevice:
        from mcuflow.qemu import QemuSession

        if self.external is not None:
            self.session = self.external
            self.banner = self._ask_banner()
        else:
            self.session = QemuSession(
                self.elf, self.board, emulate=self.emulate, read_timeout=self.reply_timeout, boot_token=b"ready\n"
            )
            self.session.__enter__()  # a loaded machine can lose QEMU's first output: it restarts once
            self.banner = self.session.boot_text
        if self.board.counter.unit != "instructions":
            return self  # cycles (DWT, SysTick at the core clock): nothing to calibrate against
        try:
            counted = self._count(self.command(b"c" + CALIBRATION_RUNS.to_bytes(4, "little")))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        if abs(counted - 2 * CALIBRATION_RUNS) > 2 * CALIBRATION_RUNS // 100:
            self.__exit__(None, None, None)  # the counter must count instructions
            raise ToolchainError(f"counter calibration read {counted} for {2 * CALIBRATION_RUNS} instructions")
        return self

    def _ask_banner(self) -> bytes:
        """'?' until the banner comes (a byte sent while the UART is still being set up is lost),
        then an echo to read past any banner still on its way (the one printed at reset)."""
        deadline = time.monotonic() + self.reply_timeout
        banner = b""
        while b"mcuflow-selftest" not in banner:  # the tail of the banner printed at reset does not count
            self.session.write(b"?")
            try:
                banner = self.session.read_until(b"ready\n", timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            except (ToolchainError, LinkError):
                if time.monotonic() > deadline:
                    raise
        banner = banner[banner.rindex(b"mcuflow-selftest") :]
        marker = int(time.monotonic() * 1000) & 0xFF
        self.session.write(b"e" + bytes([marker]))
        self.session.read_until(f"echo={marker:02x}\n".encode(), timeout=self.reply_timeout)
        return banner

    def __exit__(self, *exc) -> None:
        if self.external is None:
            self.session.__exit__(*exc)

    def command(self, data: bytes) -> bytes:
        self.session.write(data)
        return self.session.read_until(b"\n", timeout=self.reply_timeout)

    @staticmethod
    def _count(line: bytes, key: bytes = b"count") -> int:
        found = re.search(key + rb"=(\d+)", line)
        if found is None:
            raise ToolchainError(f"unexpected selftest reply {line[-200:]!r}")
        return int(found.group(1))

    def head(self, runs: int) -> float:
        """Mean instructions per whole head inference (exit decision included)."""
        return self._count(self.command(b"b" + runs.to_bytes(4, "little"))) / runs

    def run(self, x: bytes) -> bytes:
        """The head on one input (``input_len`` int8 bytes): the firmware's ``result ...`` line."""
        return self.command(b"r" + bytes(x))

    def layer(self, index: int, runs: int) -> tuple[float, int]:
        """Mean instructions per call of layer ``index``, and a checksum of its output."""
        line = self.command(b"l" + bytes([index]) + runs.to_bytes(4, "little"))
        if b"none" in line:
            raise ConfigError(f"the firmware has no layer {index}")
        return self._count(line) / runs, self._count(line, b"checksum")


def layer_names(export_dir: str | Path) -> list[str]:
    """Layer names in the order of the generated layer table: head layers, then each exit's."""
    from mcuflow.manifest import ExportManifest

    return [layer.name for layer in ExportManifest.read(export_dir).all_layers()]


def profile_layers(export_dir: str | Path, board: str | Board, runs: int = 10) -> dict[str, float]:
    """Build the selftest firmware for ``export_dir`` and count instructions per layer under QEMU.

    The build replaces ``export_dir/build/<board>``: build the firmware you want to keep afterwards.
    """
    from mcuflow.build import build

    board = board if isinstance(board, Board) else load_board(board)
    built = build(export_dir, board, app="selftest")
    names = layer_names(export_dir)
    with SelftestDevice(built.elf, board) as dev:
        return {name: round(dev.layer(i, runs)[0], 1) for i, name in enumerate(names)}
