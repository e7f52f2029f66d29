"""Board files' [clock] tables: the shipped boards reach their rated clocks, and settings outside
the manual's limits or disagreeing with the clocks the file states are refused by key."""

from __future__ import annotations

import pytest
from test_boards import board_data

from mcuflow.boards import list_boards, load_board, parse_board
from mcuflow.errors import ConfigError, ProtocolError
from mcuflow.link.messages import CAP_CLOCK, CAP_INPUT_QUANT, Hello

RATED = {
    "nucleo-f401re": 84_000_000,
    "nucleo-f446re": 180_000_000,
    "stm32f746g-disco": 216_000_000,
    "nucleo-h743zi": 400_000_000,
    "nrf52840dk": 64_000_000,
    "rpi-pico": 125_000_000,
}


def test_every_hardware_board_runs_at_its_rated_clock():
    for b in list_boards():
        if b.is_qemu:
            assert b.clock is None  # the emulator's clock, not the firmware's
            continue
        assert b.clock is not None and b.clock.full_speed, b.name
        assert b.clock_hz == b.clock.core_hz == RATED[b.name], b.name
        assert b.uart_reset_clock_hz == (16_000_000 if b.uart.driver == "nrf52-uarte" else b.clock.reset_hz)


@pytest.mark.parametrize(
    "board,key,value,match",
    [
        ("nucleo-f446re", "pll_n", 170, "clock_hz is 180,000,000 but the \\[clock\\] settings give 170,000,000 Hz"),
        ("nucleo-f446re", "pll_m", 4, "clock.pll_m gives a PLL input of 4,000,000 Hz, outside"),
        ("nucleo-f446re", "pll_n", 20, "clock.pll_n must be 50..432 on stm32f4, got 20"),
        ("nucleo-f446re", "flash_latency", 4, "clock.flash_latency 4 is too few wait states for 180,000,000 Hz"),
        ("nucleo-f446re", "apb1_div", 3, "clock.apb1_div must be 1, 2, 4, 8 or 16, got 3"),
        (
            "nucleo-f446re",
            "apb1_div",
            2,
            "uart.clock_hz is 45,000,000 but the \\[clock\\] settings give the UART 90,000,000",
        ),
        ("nucleo-h743zi", "pll_p", 3, "clock.pll_p must be one of"),
        ("rpi-pico", "pll_n", 50, "clock.pll_n gives a VCO of 600,000,000 Hz"),
        ("nucleo-f446re", "driver", "stm32l4", "clock.driver must be one of"),
        ("nucleo-f446re", "pll_x", 1, "clock.pll_x is not a known board setting"),
    ],
)
def test_bad_clock_settings_name_the_key(board, key, value, match):
    data = board_data(board)
    data["clock"][key] = value
    with pytest.raises(ConfigError, match=match):
        parse_board(data)


def test_clock_tables_are_for_hardware_and_rp2040_needs_one():
    data = board_data("qemu-mps2-an386")
    data["clock"] = {"driver": "nrf52", "reset_hz": 25_000_000}
    with pytest.raises(ConfigError, match="clock.driver is for hardware boards"):
        parse_board(data)
    data = board_data("rpi-pico")
    del data["clock"]
    with pytest.raises(ConfigError, match="clock is missing: the RP2040's UART needs its crystal"):
        parse_board(data)


def test_staying_at_reset_clocks_is_one_switch():
    data = board_data("nucleo-h743zi")
    data["clock"]["full_speed"] = False
    with pytest.raises(ConfigError, match="clock_hz is 400,000,000 but the \\[clock\\] settings give 64,000,000"):
        parse_board(data)
    data["clock_hz"], data["uart"]["clock_hz"] = 64_000_000, 64_000_000
    b = parse_board(data)
    assert b.clock_hz == 64_000_000 and not b.clock.full_speed


def hello(caps: int, **kw) -> Hello:
    return Hello((0, 1), caps, 784, 40, 10, 1, 1024, 0, bytes(32), "nucleo-f446re", **kw)


def test_hello_carries_the_clock_after_the_input_quantisation():
    h = hello(
        CAP_INPUT_QUANT | CAP_CLOCK, input_scale=1 / 255, input_zero_point=-128, clock_hz=180_000_000, clock_state=1
    )
    wire = h.pack()
    assert len(wire) == 51 + len("nucleo-f446re") + 5 + 5
    assert wire[-5:] == (180_000_000).to_bytes(4, "little") + b"\x01"
    back = Hello.parse(wire)
    assert (back.clock_hz, back.clock_state, back.input_zero_point) == (180_000_000, 1, -128)
    assert back.clock_text == "180,000,000 Hz (full speed)"
    alone = Hello.parse(hello(CAP_CLOCK, clock_hz=16_000_000, clock_state=3).pack())
    assert alone.clock_text == "16,000,000 Hz (fallback to the reset clock: PLL did not lock)"
    assert Hello.parse(hello(0).pack()).clock_text is None  # a QEMU board: no clock field
    with pytest.raises(ProtocolError, match="does not match its"):
        Hello.parse(wire[:-1])  # bit 13 set, field cut short
    with pytest.raises(ProtocolError, match="core clock is 0 Hz"):
        Hello.parse(hello(CAP_CLOCK, clock_hz=0, clock_state=1).pack())


def test_loaded_boards_expose_the_stand_in_only_where_it_fits():
    assert {b.name for b in list_boards() if b.emulation} == {"nucleo-f401re", "nucleo-f446re"}
    assert load_board("nucleo-f446re").emulation.serial_index == 1
