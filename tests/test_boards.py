"""Board files: the shipped boards load, and bad board files fail with errors naming the problem."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from firmware_helpers import ALL_BOARDS, HARDWARE_BOARDS, QEMU_BOARDS

from mcuflow import paths
from mcuflow.boards import list_boards, load_board, load_board_file, parse_board
from mcuflow.build import render_port_files
from mcuflow.cli import cli
from mcuflow.errors import ConfigError


def board_data(name: str = "qemu-mps2-an386") -> dict:
    return tomllib.loads((paths.boards_dir() / f"{name}.toml").read_text())


def test_shipped_boards_load_and_are_consistent():
    boards = {b.name: b for b in list_boards()}
    assert sorted(boards) == sorted(ALL_BOARDS)
    for name in QEMU_BOARDS:
        b = boards[name]
        assert b.is_qemu and b.counter.unit == "instructions" and b.counter.kind == "systick"
        assert b.flasher is None
    for name in HARDWARE_BOARDS:
        b = boards[name]
        assert not b.is_qemu and b.counter.unit == "cycles" and b.flasher is not None
    assert boards["rpi-pico"].counter.kind == "systick"  # no DWT on Cortex-M0+
    assert boards["nucleo-h743zi"].uart.driver == "stm32-usart-v2"
    assert boards["qemu-netduinoplus2"].uart.driver == "stm32-usart-v1"


def test_cflags_follow_the_board():
    assert load_board("qemu-mps2-an385").cflags() == ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]
    m7 = load_board("qemu-mps2-an500").cflags()
    assert "-mcpu=cortex-m7" in m7 and "-mfpu=fpv5-d16" in m7 and "-mfloat-abi=hard" in m7


def test_unknown_board_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        load_board("nucleo-f999")
    msg = str(err.value)
    assert "unknown board 'nucleo-f999'" in msg
    for name in ALL_BOARDS:
        assert name in msg


def test_board_by_path(tmp_path):
    data = (paths.boards_dir() / "nrf52840dk.toml").read_text().replace('name = "nrf52840dk"', 'name = "my-board"')
    f = tmp_path / "mine.toml"
    f.write_text(data)
    assert load_board(str(f)).name == "my-board"
    with pytest.raises(ConfigError, match="board file not found"):
        load_board(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda d: d["memory"].pop("flash_bytes"), r"memory\.flash_bytes is missing"),
        (lambda d: d.pop("memory"), r"memory is missing"),
        (lambda d: d.update(cpu="cortex-m99"), r"cpu must be one of .*cortex-m4.*'cortex-m99'"),
        (lambda d: d["uart"].update(baud="fast"), r"uart\.baud must be int"),
        (lambda d: d["uart"].update(driver="usb"), r"uart\.driver must be one of"),
        (lambda d: d["memory"].update(ram_bytes=-4), r"memory\.ram_bytes must be between"),
        (lambda d: d.update(colour="red"), r"colour is not a known board setting"),
        (lambda d: d["counter"].update(kind="dwt"), r"'dwt' does not work under QEMU"),
        (lambda d: d["counter"].pop("systick_hz"), r"counter\.systick_hz is missing"),
        (lambda d: d.update(cpu="cortex-m0plus"), r"fpu 'fpv4-sp-d16' is not available on cortex-m0plus"),
        (lambda d: d.update(fpu="none"), r"float_abi must be 'soft' when fpu is 'none'"),
        (lambda d: d["memory"].update(ram_origin=0x100), r"RAM overlap flash"),
        (lambda d: d.update(stack_bytes=1001), r"stack_bytes must be a multiple of 8"),
        (lambda d: d.update(name="Bad Name"), r"name must be lower-case"),
        (lambda d: d["uart"].update(clock_enables=[[1, 2, 3]]), r"clock_enables\[0\] must be \[address, mask\]"),
    ],
)
def test_invalid_board_fields_are_named(edit, pattern):
    data = board_data()
    edit(data)
    with pytest.raises(ConfigError, match=pattern):
        parse_board(data, source="test.toml")


def test_hardware_board_rules():
    data = board_data("nucleo-f401re")
    data["counter"]["unit"] = "instructions"
    with pytest.raises(ConfigError, match="'instructions' needs a \\[qemu\\] board"):
        parse_board(data)
    data = board_data("rpi-pico")
    data["counter"]["kind"] = "dwt"
    with pytest.raises(ConfigError, match="no cycle counter on cortex-m0plus"):
        parse_board(data)
    data = board_data("nucleo-f401re")
    data["flasher"].pop("target")
    with pytest.raises(ConfigError, match="flasher.target is missing"):
        parse_board(data)


def test_bad_toml_and_name_mismatch(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_board_file(bad)
    (tmp_path / "renamed.toml").write_text((paths.boards_dir() / "qemu-mps2-an385.toml").read_text())
    monkeypatch.setenv("MCUFLOW_BOARDS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="does not match the file name"):
        load_board("renamed")


def test_counter_scale_is_exact():
    assert (load_board("qemu-mps2-an386").counter.tick_num, load_board("qemu-mps2-an386").counter.tick_den) == (40, 1)
    c = load_board("qemu-netduinoplus2").counter  # 168 MHz SysTick: 1e9/168e6 = 125/21 instructions per tick
    assert (c.tick_num, c.tick_den) == (125, 21)
    assert load_board("nucleo-f401re").counter.tick_num == 1


def test_linker_script_generation(tmp_path):
    board = load_board("nucleo-f446re")
    render_port_files(board, tmp_path)
    ld = (tmp_path / "linker.ld").read_text()
    assert re.search(r"FLASH \(rx\)\s*: ORIGIN = 0x08000000, LENGTH = 524288", ld)
    assert re.search(r"RAM\s+\(rwx\) : ORIGIN = 0x20000000, LENGTH = 131072", ld)
    assert "_stack_size = 2048;" in ld
    assert "ASSERT(_ebss + _stack_size <= _estack" in ld
    assert ".boot2" not in ld
    hdr = (tmp_path / "board_config.h").read_text()
    assert "#define BOARD_UART_BASE 0x40004400u" in hdr
    assert "{0x40023840u, 0x00020000u}" in hdr and "{0x40020000u, 3u, 7u}" in hdr
    assert "#define BOARD_SEMIHOSTING 0" in hdr

    pico = tmp_path / "pico"
    pico.mkdir()
    render_port_files(load_board("rpi-pico"), pico)
    assert ". = 256;" in (pico / "linker.ld").read_text()
    nrf = tmp_path / "nrf"
    nrf.mkdir()
    render_port_files(load_board("nrf52840dk"), nrf)
    hdr = (nrf / "board_config.h").read_text()
    assert "#define BOARD_UART_BAUD_REG 0x01D7E000u" in hdr  # Nordic's documented value for 115200
    assert "#define BOARD_UART_TX_PIN 6u" in hdr


def test_boards_command_lists_budgets():
    result = CliRunner().invoke(cli, ["boards"])
    assert result.exit_code == 0, result.output
    for name in ALL_BOARDS:
        assert name in result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("nucleo-f401re"))
    assert "512 KiB" in line and "96 KiB" in line and "pyocd" in line


def test_paths_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("MCUFLOW_FIRMWARE_DIR", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="MCUFLOW_FIRMWARE_DIR"):
        paths.firmware_dir()
    assert Path(paths.boards_dir()).is_dir()
