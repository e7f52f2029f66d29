"""Hardware images on their stand-in emulator: the unmodified NUCLEO-F401RE and F446RE protocol
firmware (what `mcuflow build` makes for them) served 1,000 MNIST samples on QEMU's netduinoplus2."""

from __future__ import annotations

import pytest
from conftest import ROOT, require_tools
from test_boards import board_data

from mcuflow.boards import load_board, parse_board
from mcuflow.cli import main
from mcuflow.errors import ConfigError
from mcuflow.hil_result import read_result
from mcuflow.qemu import QemuSession, qemu_command

CHECKPOINT = ROOT / "examples" / "paper_sparse.pt"
EMULATED = ["nucleo-f401re", "nucleo-f446re"]


@pytest.mark.parametrize("name", EMULATED)
def test_stand_in_holds_the_board(name):
    b = load_board(name)
    assert b.qemu is None and b.emulation.machine == "netduinoplus2"
    assert b.emulation.serial_index == 1  # USART2, the ST-LINK VCP's USART, is QEMU's second -serial
    assert b.flash_bytes <= b.emulation.flash_bytes and b.ram_bytes <= b.emulation.ram_bytes
    assert b.emulator() is None  # emulation is asked for, never implied
    assert b.emulator(emulate=True).machine == "netduinoplus2"


def test_emulation_needs_an_explicit_ask(tmp_path):
    with pytest.raises(
        ConfigError, match="is hardware, not a QEMU machine.*netduinoplus2, its stand-in, with --emulate"
    ):
        QemuSession(tmp_path / "x.elf", "nucleo-f446re")
    with pytest.raises(ConfigError, match="is hardware, not a QEMU machine \\(no \\[qemu\\] table\\)$"):
        QemuSession(tmp_path / "x.elf", "nucleo-h743zi", emulate=True)  # no stand-in for the H7


def test_emulated_command_line_puts_the_uart_on_the_second_serial(tmp_path):
    require_tools("qemu-system-arm")
    cmd = qemu_command(load_board("nucleo-f401re"), tmp_path / "f.elf", "tcp:127.0.0.1:1,server=on", emulate=True)
    i = cmd.index("-machine")
    assert cmd[i + 1] == "netduinoplus2"
    serials = [cmd[j + 1] for j, a in enumerate(cmd) if a == "-serial"]
    assert serials == ["null", "tcp:127.0.0.1:1,server=on"]


def test_bad_emulation_tables_are_refused():
    data = board_data("nucleo-f401re")
    data["emulation"]["ram_bytes"] = 0x10000  # smaller than the F401RE's 96 KiB
    with pytest.raises(ConfigError, match="emulation.ram_bytes the stand-in .* has less flash or RAM"):
        parse_board(data)
    data = board_data("qemu-mps2-an386")
    data["emulation"] = {"machine": "mps2-an385", "flash_bytes": 1, "ram_bytes": 1}
    with pytest.raises(ConfigError, match="emulation.machine is for hardware boards"):
        parse_board(data)
    data = board_data("nucleo-f401re")
    data["emulation"]["cpu"] = "cortex-m4"
    with pytest.raises(ConfigError, match="emulation.cpu is not a known board setting"):
        parse_board(data)


@pytest.mark.firmware
@pytest.mark.slow
@pytest.mark.parametrize("board", EMULATED)
def test_hardware_image_serves_mnist_on_its_stand_in(tmp_path, board, mnist_dir):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path / "hil.json"
    code = main(
        [
            "hil",
            str(CHECKPOINT),
            "--board",
            board,
            "--emulate",
            "--samples",
            "1000",
            "--data-dir",
            str(mnist_dir),
            "--workdir",
            str(tmp_path / "w"),
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    r = read_result(out)
    assert r.board == board and r.qemu_machine == "netduinoplus2"
    assert r.samples == 1000 and r.answered == 1000
    assert r.lost == 0 and r.errors == 0
    assert r.parity_mismatches == 0, r.parity_examples
    assert r.accuracy == pytest.approx(r.reference_accuracy) and r.accuracy > 0.9
    # The image is the hardware one: linked for the board's flash, counting cycles (DWT), which
    # the emulator does not run, so no count is reported rather than a zero.
    assert r.budget.flash_bytes == load_board(board).flash_bytes
    assert r.instruction_unit == "cycles" and r.device_instructions_mean is None
    assert r.layer_instructions is None


@pytest.mark.firmware
def test_stand_in_runs_the_clock_fallback(tmp_path):
    """QEMU's STM32F405 leaves the RCC unimplemented (every read 0): the F446RE image's clock
    setup gives up on its first bounded wait, falls back to the 16 MHz HSI and says so in HELLO."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    from firmware_helpers import copy_fake_export

    from mcuflow.build import build
    from mcuflow.link import DeviceClient
    from mcuflow.link.messages import CAP_CLOCK
    from mcuflow.link.transport import SerialTransport

    built = build(copy_fake_export(tmp_path / "export"), "nucleo-f446re")
    with QemuSession(built.elf, "nucleo-f446re", emulate=True) as q:
        hello = DeviceClient(SerialTransport.wrap(q.serial, q.url), timeout=5).hello(timeout=10, retries=2)
    assert hello.board == "nucleo-f446re" and hello.capabilities & CAP_CLOCK
    assert (hello.clock_hz, hello.clock_state) == (16_000_000, 2)
    assert hello.clock_text == "16,000,000 Hz (fallback to the reset clock: oscillator did not start)"
