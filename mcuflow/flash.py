"""``mcuflow flash``: write a built firmware to a board through pyocd or openocd, as its board file says.

Both tools do the same four things, each failure one line:
  1. find the probe: none, several without ``--probe``, or none with the id asked for;
  2. connect and check the chip is the board's (``[flasher] chip_id``: an ID register, e.g. the
     STM32 DBGMCU_IDCODE): a NUCLEO-F401RE image never goes into an F446;
  3. program the ELF and verify it (pyocd: every load segment read back and compared;
     openocd: its ``program ... verify``);
  4. reset, so the new firmware runs.

pyocd is driven through its Python API (``ConnectHelper``, ``Session``, ``FileProgrammer``,
imported on first use), openocd through its command line (``-f`` configs, ``-c`` commands), with
the CMSIS-DAP probes found in sysfs (the CMSIS-DAP specification puts "CMSIS-DAP" in the product
string) so that several connected probes are an error, not a guess. Tests replace both interfaces
(``Pyocd(api=...)``, ``Openocd(run=..., usb_root=...)``) with fakes that record the calls.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, ToolchainError

FLASH_TIMEOUT = 300
CHECK_TIMEOUT = 60
USB_DEVICES = Path("/sys/bus/usb/devices")
_NO_PROBE = re.compile(
    r"no (available |connected )?(debug )?probe|no device found|unable to find|open failed|"
    r"no cmsis-dap|libusb_open|could not find|no probe",
    re.IGNORECASE,
)
_WRONG = "mcuflow: wrong target"
HINTS = {
    "pyocd": "install it with `pip install pyocd` (or `pip install mcuflow[flash]`)",
    "openocd": "install it with `apt-get install openocd` (Debian/Ubuntu)",
}


@dataclass(frozen=True)
class Probe:
    uid: str
    description: str = ""


def firmware_path(export_dir: str | Path, board: Board) -> Path:
    elf = Path(export_dir) / "build" / board.name / "firmware.elf"
    if not elf.is_file():
        raise ConfigError(
            f"no firmware for {board.name} in {export_dir}; run `mcuflow build {export_dir} --board {board.name}` first"
        )
    return elf


def _flasher(board: Board):
    if board.is_qemu:
        raise ConfigError(f"{board.name} is a QEMU machine: nothing to flash (the launcher runs the ELF directly)")
    if board.flasher is None:
        raise ConfigError(f"board {board.name!r} names no flasher (add a [flasher] table to its board file)")
    return board.flasher


def choose_probe(tool: str, probes: list[Probe] | None, wanted: str | None) -> str | None:
    """The probe to use: `wanted` if it is there, the only one, or an error naming what was found.
    None when the tool finds probes itself (openocd without sysfs)."""
    if probes is None:
        return wanted
    ids = ", ".join(p.uid for p in probes)
    if wanted is not None:
        matches = [p for p in probes if wanted.lower() in p.uid.lower()]  # pyocd's own contains-match
        if len(matches) == 1:
            return matches[0].uid
        if not matches:
            found = f" (found: {ids})" if probes else ""
            raise ToolchainError(f"no debug probe with id {wanted!r} found by {tool}{found}: is the board plugged in?")
        raise ToolchainError(f"{len(matches)} debug probes match id {wanted!r} ({', '.join(p.uid for p in matches)})")
    if not probes:
        raise ToolchainError(f"no debug probe found by {tool}: is the board plugged in?")
    if len(probes) > 1:
        raise ToolchainError(f"{len(probes)} debug probes found by {tool} ({ids}): choose one with --probe")
    return probes[0].uid


def wrong_target(board: Board, value: int) -> ToolchainError:
    cid = board.flasher.chip_id
    return ToolchainError(
        f"the chip on the probe is not {board.name}'s {cid.name}: ID register 0x{cid.address:08X} reads "
        f"0x{value & cid.mask:X} (mask 0x{cid.mask:X}), expected 0x{cid.value:X}"
    )


class Pyocd:
    """pyOCD through its Python API; `api` (ConnectHelper, Session, FileProgrammer) for tests."""

    name = "pyocd"

    def __init__(self, api=None):
        self._api = api

    @property
    def api(self):
        if self._api is None:
            try:
                from pyocd.core.helpers import ConnectHelper
                from pyocd.core.session import Session
                from pyocd.flash.file_programmer import FileProgrammer
            except ImportError:
                raise ToolchainError(f"pyocd not found (the Python package); {HINTS['pyocd']}") from None
            self._api = SimpleNamespace(ConnectHelper=ConnectHelper, Session=Session, FileProgrammer=FileProgrammer)
        return self._api

    def _probes(self) -> list:
        return list(self.api.ConnectHelper.get_all_connected_probes(blocking=False))

    def probes(self) -> list[Probe]:
        return [Probe(p.unique_id, getattr(p, "description", "")) for p in self._probes()]

    def program(self, board: Board, elf: Path, probe: str | None, *, verify: bool, reset: bool) -> list[str]:
        from mcuflow.imagecheck import Elf

        uid = choose_probe(self.name, self.probes(), probe)
        dev = next(p for p in self._probes() if p.unique_id == uid)
        target_name = board.flasher.target
        image = Elf.read(elf)
        try:
            with self.api.Session(dev, auto_open=True, target_override=target_name) as session:
                target = session.target
                cid = board.flasher.chip_id
                if cid is not None:
                    value = target.read32(cid.address)
                    if value & cid.mask != cid.value:
                        raise wrong_target(board, value)
                self.api.FileProgrammer(session).program(str(elf), file_format="elf")
                if verify:
                    for addr, data in image.load_segments():
                        back = bytes(target.read_memory_block8(addr, len(data)))
                        if back != data:
                            at = next(i for i, (a, b) in enumerate(zip(back, data, strict=False)) if a != b)
                            raise ToolchainError(
                                f"verify failed: flash at 0x{addr + at:08X} holds 0x{back[at]:02X}, the image 0x{data[at]:02X}"
                            )
                if reset:
                    target.reset()
        except ToolchainError:
            raise
        except Exception as err:  # pyocd.core.exceptions.Error and the transport's errors
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if _NO_PROBE.search(text):
                raise ToolchainError(
                    f"no debug probe with id {uid!r} answered pyocd: is the board plugged in?"
                ) from None
            raise ToolchainError(f"pyocd failed: {text}") from None
        steps = ["pyocd", f"target={target_name}", f"probe={uid}", f"program={elf}"]
        return steps + (["verify"] if verify else []) + (["reset"] if reset else [])


class Openocd:
    """openocd through its command line; `run` (the subprocess call) and `usb_root` for tests."""

    name = "openocd"

    def __init__(self, run=None, usb_root: Path = USB_DEVICES):
        self._run = run or _run_tool
        self.usb_root = Path(usb_root)

    def probes(self) -> list[Probe] | None:
        """The CMSIS-DAP probes on USB (sysfs), or None where sysfs is not there to ask."""
        if not self.usb_root.is_dir():
            return None
        found = []
        for dev in sorted(self.usb_root.iterdir()):
            product = _read(dev / "product")
            if product and "CMSIS-DAP" in product:
                found.append(Probe(_read(dev / "serial") or dev.name, product))
        return found

    def command(self, board: Board, probe: str | None) -> list[str]:
        exe = shutil.which(self.name)
        if exe is None:
            raise ToolchainError(f"{self.name} not found on PATH; {HINTS[self.name]}")
        cmd = [exe]
        for cfg in board.flasher.configs:
            cmd += ["-f", cfg]
        if probe:
            cmd += ["-c", f"adapter serial {probe}"]
        return cmd

    def program(self, board: Board, elf: Path, probe: str | None, *, verify: bool, reset: bool) -> list[str]:
        base = self.command(board, None)  # a missing tool first, before looking for probes
        probes = self.probes()
        # sysfs sees USB CMSIS-DAP probes only: none there is not proof of none (another adapter in
        # the configs), so openocd is asked then; several there is a question only the user answers.
        uid = choose_probe(self.name, probes, probe) if probes else probe
        base = self.command(board, uid)
        cid = board.flasher.chip_id
        if cid is not None:
            check = (
                f"set id [read_memory 0x{cid.address:08X} 32 1]; "
                f'if {{($id & 0x{cid.mask:X}) != 0x{cid.value:X}}} {{echo "{_WRONG} $id"; shutdown error}}'
            )
            self._call(board, base + ["-c", "init", "-c", check, "-c", "shutdown"], CHECK_TIMEOUT)
        words = ["program", str(elf)] + (["verify"] if verify else []) + (["reset"] if reset else []) + ["exit"]
        cmd = base + ["-c", " ".join(words)]
        self._call(board, cmd, FLASH_TIMEOUT)
        return cmd

    def _call(self, board: Board, cmd: list[str], timeout: float) -> None:
        code, out = self._run(cmd, timeout)
        if code == 0:
            return
        wrong = re.search(re.escape(_WRONG) + r" (0x[0-9a-fA-F]+|\d+)", out)
        if wrong:
            raise wrong_target(board, int(wrong.group(1), 0))
        if _NO_PROBE.search(out):
            raise ToolchainError(f"no debug probe found by {self.name}: is the board plugged in?")
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.lower().startswith("error")]
        raise ToolchainError(f"{self.name} failed: {(errors or lines or [f'exit status {code}'])[-1].strip()}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _run_tool(cmd: list[str], timeout: float) -> tuple[int, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s") from None
    return proc.returncode, proc.stderr + proc.stdout


def tool_for(board: Board):
    return Pyocd() if _flasher(board).tool == "pyocd" else Openocd()


def flash_command(board: Board, elf: Path, probe: str | None = None) -> list[str]:
    """The openocd program command line for `board` (no shell); pyocd runs in-process."""
    flasher = _flasher(board)
    if flasher.tool != "openocd":
        raise ConfigError(f"{board.name} flashes through pyocd's Python API: there is no command line to show")
    return Openocd().command(board, probe) + ["-c", f"program {elf} verify reset exit"]


def flash(
    export_dir: str | Path,
    board: str | Path | Board,
    *,
    probe: str | None = None,
    verify: bool = True,
    reset: bool = True,
    tool=None,
) -> list[str]:
    """Flash DIR/build/<board>/firmware.elf: find the probe, check the chip, program, verify,
    reset. Returns what ran (openocd's command line; pyocd's steps)."""
    board = board if isinstance(board, Board) else load_board(board)
    _flasher(board)
    elf = firmware_path(export_dir, board)
    tool = tool or tool_for(board)
    return tool.program(board, elf, probe, verify=verify, reset=reset)
