"""``mcuflow flash``: write a built firmware to a board through pyocd or openocd, as its board file says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, ToolchainError

FLASH_TIMEOUT = 300
_NO_PROBE = re.compile(
    r"no (available |connected )?(debug )?probe|no device found|unable to find|open failed|"
    r"no cmsis-dap|libusb_open|could not find|no probe",
    re.IGNORECASE,
)
HINTS = {
    "pyocd": "install it with `pip install pyocd` (or `pip install mcuflow[flash]`)",
    "openocd": "install it with `apt-get install openocd` (Debian/Ubuntu)",
}


def firmware_path(export_dir: str | Path, board: Board) -> Path:
    elf = Path(export_dir) / "build" / board.name / "firmware.elf"
    if not elf.is_file():
        raise ConfigError(
            f"no firmware for {board.name} in {export_dir}; run `mcuflow build {export_dir} --board {board.name}` first"
        )
    return elf


def flash_command(board: Board, elf: Path, probe: str | None = None) -> list[str]:
    """The flasher's argument list (no shell): pyocd or openocd, as the board file says."""
    if board.is_qemu:
        raise ConfigError(f"{board.name} is a QEMU machine: nothing to flash (the launcher runs the ELF directly)")
    if board.flasher is None:
        raise ConfigError(f"board {board.name!r} names no flasher (add a [flasher] table to its board file)")
    tool = board.flasher.tool
    exe = shutil.which(tool)
    if exe is None:
        raise ToolchainError(f"{tool} not found on PATH; {HINTS[tool]}")
    if tool == "pyocd":
        cmd = [exe, "flash", "-t", board.flasher.target]
        if probe:
            cmd += ["-u", probe]
        return [*cmd, str(elf)]
    cmd = [exe]
    for cfg in board.flasher.configs:
        cmd += ["-f", cfg]
    if probe:
        cmd += ["-c", f"adapter serial {probe}"]
    return [*cmd, "-c", f"program {elf} verify reset exit"]


def flash(export_dir: str | Path, board: str | Path | Board, *, probe: str | None = None) -> list[str]:
    """Flash DIR/build/<board>/firmware.elf; returns the command that ran."""
    board = board if isinstance(board, Board) else load_board(board)
    elf = firmware_path(export_dir, board)
    cmd = flash_command(board, elf, probe)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FLASH_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{board.flasher.tool} timed out after {FLASH_TIMEOUT} s") from None
    if proc.returncode != 0:
        out = (proc.stderr + proc.stdout).strip()
        if _NO_PROBE.search(out):
            which = f" with id {probe!r}" if probe else ""
            raise ToolchainError(f"no debug probe{which} found by {board.flasher.tool}: is the board plugged in?")
        last = out.splitlines()[-1] if out else f"exit status {proc.returncode}"
        raise ToolchainError(f"{board.flasher.tool} failed: {last}")
    return cmd
