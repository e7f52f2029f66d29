"""Flashing and missing-tool error paths (no hardware or probe needed)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from mcuflow.boards import load_board
from mcuflow.build import build
from mcuflow.errors import ConfigError, ToolchainError
from mcuflow.flash import Pyocd, flash, flash_command
from mcuflow.qemu import QemuSession


def fake_tool(bin_dir: Path, name: str, output: str, status: int) -> Path:
    """A stand-in flasher that logs its arguments and fails like the real one without a probe."""
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "$@" > "{bin_dir}/{name}.args"\necho "{output}" >&2\nexit {status}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool


def fake_firmware(export_dir: Path, board: str) -> Path:
    elf = export_dir / "build" / board / "firmware.elf"
    elf.parent.mkdir(parents=True)
    elf.write_bytes(b"\x7fELF")
    return elf


def test_missing_flasher_says_how_to_install(tmp_path, monkeypatch):
    fake_firmware(tmp_path, "nucleo-f401re")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "pyocd", None)  # pyocd is used through its Python API: not importable
    with pytest.raises(
        ToolchainError, match="pyocd not found \\(the Python package\\); install it with `pip install pyocd`"
    ):
        flash(tmp_path, "nucleo-f401re")
    fake_firmware(tmp_path, "rpi-pico")
    with pytest.raises(ToolchainError, match="openocd not found on PATH; install it with `apt-get install openocd`"):
        flash(tmp_path, "rpi-pico")


def test_no_probe_is_a_clear_error(tmp_path):
    from test_flash import FakePyocd

    fake_firmware(tmp_path, "nucleo-f446re")
    fake = FakePyocd(probes=())  # pyocd's API finds no probe
    with pytest.raises(ToolchainError, match="no debug probe with id 'ABC123' found by pyocd"):
        flash(tmp_path, "nucleo-f446re", probe="ABC123", tool=Pyocd(api=fake))
    assert fake.calls == []  # no session opened, nothing written


def test_flasher_failure_and_success(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "openocd", "Error: target voltage too low", 1)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    elf = fake_firmware(tmp_path, "rpi-pico")
    with pytest.raises(ToolchainError, match="openocd failed: Error: target voltage too low"):
        flash(tmp_path, "rpi-pico")
    fake_tool(bin_dir, "openocd", "** Programming Finished **", 0)
    cmd = flash(tmp_path, "rpi-pico")
    assert cmd[1:] == [
        "-f",
        "interface/cmsis-dap.cfg",
        "-f",
        "target/rp2040.cfg",
        "-c",
        f"program {elf} verify reset exit",
    ]


def test_flash_needs_a_build_and_a_hardware_board(tmp_path):
    with pytest.raises(ConfigError, match="run `mcuflow build .* --board nucleo-f401re` first"):
        flash(tmp_path, "nucleo-f401re")
    with pytest.raises(ConfigError, match="is a QEMU machine: nothing to flash"):
        flash_command(load_board("qemu-mps2-an386"), tmp_path / "x.elf")
    with pytest.raises(ConfigError, match="is hardware, not a QEMU machine"):
        QemuSession(tmp_path / "x.elf", "nucleo-f401re").start()


def test_flash_cli_reports_errors_in_one_line(tmp_path, capsys):
    from mcuflow.cli import main

    assert main(["flash", str(tmp_path), "--board", "qemu-mps2-an386"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mcuflow: error: ") and "Traceback" not in err


def test_missing_cross_compiler_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(
        ToolchainError, match="arm-none-eabi-gcc not found.*apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
    ):
        build(tmp_path, "qemu-mps2-an386")
    elf = tmp_path / "f.elf"
    elf.write_bytes(b"")
    with pytest.raises(ToolchainError, match="qemu-system-arm not found.*apt-get install qemu-system-arm"):
        QemuSession(elf, "qemu-mps2-an386").start()
