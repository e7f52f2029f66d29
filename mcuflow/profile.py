"""Per-layer instruction counts from the device's own counter (the selftest firmware under QEMU).

The selftest app (firmware/selftest/selftest.c) answers one-letter commands: ``c`` calibrates the
counter, ``b`` times whole head inferences and ``l`` times one layer of the generated layer table
(head layers first, then each exit's). Counts are instructions under QEMU ``-icount``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, ToolchainError

CALIBRATION_RUNS = 100_000


class SelftestDevice:
    """A selftest firmware under QEMU, used as a context manager."""

    def __init__(self, elf: str | Path, board: str | Board, reply_timeout: float = 60.0):
        self.elf, self.board, self.reply_timeout = Path(elf), board, reply_timeout

    def __enter__(self) -> SelftestDevice:
        from mcuflow.qemu import QemuSession

        for attempt in range(2):  # a loaded machine can delay QEMU's start: one retry
            self.session = QemuSession(self.elf, self.board)
            self.session.__enter__()
            try:
                self.session.read_until(b"ready\n", timeout=self.reply_timeout)
                break
            except ToolchainError:
                self.session.__exit__(None, None, None)
                if attempt:
                    raise
        try:
            counted = self._count(self.command(b"c" + CALIBRATION_RUNS.to_bytes(4, "little")))
        except BaseException:
            self.session.__exit__(None, None, None)
            raise
        if abs(counted - 2 * CALIBRATION_RUNS) > 2 * CALIBRATION_RUNS // 100:
            self.session.__exit__(None, None, None)  # the counter must count instructions
            raise ToolchainError(f"counter calibration read {counted} for {2 * CALIBRATION_RUNS} instructions")
        return self

    def __exit__(self, *exc) -> None:
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
