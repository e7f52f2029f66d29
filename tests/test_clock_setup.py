"""The full-speed clock setups (firmware/clock/), tested at register level on the host: each board's
clock code compiled against its generated board_config.h and a fake register file
(tests/c/clock_harness.c) that records every write and answers ready flags like the chip, or
refuses to. The writes must be the reference manual's sequence with the board file's values; a
flag that never comes must end in a bounded wait and the fallback to the reset clock, with the
UART divisor of the clock actually in use. QEMU's STM32F4 RCC is unimplemented (reads 0, see
test_emulation.py), so no emulator can check this."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require_tools

from mcuflow import paths
from mcuflow.boards import load_board, load_board_file
from mcuflow.build import render_port_files

pytestmark = pytest.mark.toolchain

WAIT_TRIES = 100_000  # PORT_WAIT_TRIES in firmware/include/port.h
HARNESS = ROOT / "tests" / "c" / "clock_harness.c"
UART_FILES = {"stm32-usart-v1": "stm32_usart_v1", "stm32-usart-v2": "stm32_usart_v2", "pl011": "pl011",
              "nrf52-uarte": "nrf52_uarte"}  # fmt: skip

# How each chip answers (the rules of tests/c/clock_harness.c): reset values, and which write
# makes which ready flag set.
F4_RCC, F4_PWR = 0x40023800, 0x40007000
F4_CHIP = [
    "init", hex(F4_RCC), "0x83",  # RCC_CR: HSION | HSIRDY after reset
    "init", hex(F4_RCC + 4), "0x24003010",  # RCC_PLLCFGR reset value (the F446's PLLR = 2 in it)
    "ready", hex(F4_RCC), "0x20000", hex(F4_RCC), "0x10000", "0x10000",  # HSERDY <- HSEON
    "ready", hex(F4_RCC), "0x2000000", hex(F4_RCC), "0x1000000", "0x1000000",  # PLLRDY <- PLLON
    "ready", hex(F4_PWR + 4), "0x4000", hex(F4_RCC), "0x1000000", "0x1000000",  # VOSRDY once the PLL runs
    "ready", hex(F4_PWR + 4), "0x10000", hex(F4_PWR), "0x10000", "0x10000",  # ODRDY <- ODEN
    "ready", hex(F4_PWR + 4), "0x20000", hex(F4_PWR), "0x20000", "0x20000",  # ODSWRDY <- ODSWEN
    "mirror", hex(F4_RCC + 8), "2", "2", hex(F4_RCC + 8), "0",  # CFGR SWS <- SW
]  # fmt: skip
H7_RCC, H7_PWR = 0x58024400, 0x58024800
H7_CHIP = [
    "init", hex(H7_RCC), "0x5",  # RCC_CR: HSION | HSIRDY
    "init", hex(H7_PWR + 0xC), "0x6",  # PWR_CR3: SCUEN | LDOEN after reset
    "init", hex(H7_RCC + 0x28), "0x02020200",  # PLLCKSELR reset: DIVM1..3 = 32
    "init", hex(H7_RCC + 0x2C), "0x01FF0000",  # PLLCFGR reset
    "ready", hex(H7_PWR + 4), "0x2000", hex(H7_PWR + 0xC), "0x4", "0",  # ACTVOSRDY once SCUEN is cleared
    "init", hex(H7_PWR + 0x18), "0x4000",  # PWR_D3CR: VOS3 after reset
    "ready", hex(H7_PWR + 0x18), "0x2000", hex(H7_PWR + 0x18), "0xc000", "0xc000",  # VOSRDY once at VOS1
    "ready", hex(H7_RCC), "0x2000000", hex(H7_RCC), "0x1000000", "0x1000000",  # PLL1RDY <- PLL1ON
    "mirror", hex(H7_RCC + 0x10), "3", "3", hex(H7_RCC + 0x10), "0",  # CFGR SWS <- SW
]  # fmt: skip
RP_CHIP = [
    "aliases",
    "init", "0x4000c000", "0x01ffffff",  # RESETS_RESET: everything in reset
    "init", "0x40028004", "0x2d",  # PLL_SYS PWR: PD | DSMPD | POSTDIVPD | VCOPD
    "ready", "0x40024004", "0x80000000", "0x40024000", "0xfff000", "0xfab000",  # XOSC STABLE <- ENABLE
    "onehot", "0x40008038", "0x40008030", "0", "2",  # CLK_REF_SELECTED <- SRC
    "onehot", "0x40008044", "0x4000803c", "0", "1",  # CLK_SYS_SELECTED <- SRC
    "ready", "0x4000c008", "0x1000", "0x4000c000", "0x1000", "0",  # RESET_DONE.pll_sys once out of reset
    "ready", "0x40028000", "0x80000000", "0x40028004", "0x21", "0",  # LOCK once PD and VCOPD are clear
]  # fmt: skip
NRF_CHIP = [
    "ready", "0x40000100", "1", "0x40000000", "1", "1",  # EVENTS_HFCLKSTARTED <- TASKS_HFCLKSTART
    "ready", "0x4000040c", "0x10001", "0x40000000", "1", "1",  # HFCLKSTAT: Xtal, running
]  # fmt: skip
CHIPS = {"stm32f4": F4_CHIP, "stm32f7": F4_CHIP, "stm32h7": H7_CHIP, "rp2040": RP_CHIP, "nrf52": NRF_CHIP}


class Run:
    def __init__(self, out: str):
        self.writes: list[tuple[int, int]] = []
        self.polls: dict[int, int] = {}
        self.uart: dict[int, int] = {}
        for line in out.splitlines():
            kind, *rest = line.split()
            if kind == "W":
                self.writes.append((int(rest[0], 16), int(rest[1], 16)))
            elif kind == "P":
                self.polls[int(rest[0], 16)] = int(rest[1])
            elif kind == "uart":
                self.uart[int(rest[0], 16)] = int(rest[1], 16)
            else:
                setattr(self, kind, int(rest[0]))

    def last(self, addr: int) -> int:
        return [v for a, v in self.writes if a == addr][-1]


def harness(tmp_path: Path, board) -> Path:
    """The board's clock code + UART driver + the fake register file, built for the host."""
    require_tools("gcc")
    b = board if not isinstance(board, str) else load_board(board)
    out = tmp_path / b.name
    out.mkdir(parents=True, exist_ok=True)
    render_port_files(b, out)
    fw = paths.firmware_dir()
    srcs = [fw / "clock" / "clock.c", fw / b.firmware_sources()[2], fw / "uart" / f"{UART_FILES[b.uart.driver]}.c"]
    exe = out / "clock_harness"
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-pointer-to-int-cast", "-DMCUFLOW_HOST_MMIO"]
    cmd += [f"-I{out}", f"-I{fw / 'include'}", *map(str, srcs), str(HARNESS), "-o", str(exe)]
    proc = subprocess.run(cmd, timeout=120, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return exe


def run(exe: Path, *rules: str) -> Run:
    proc = subprocess.run([str(exe), *rules], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return Run(proc.stdout)


@pytest.fixture(scope="module")
def exes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clock")
    names = ["nucleo-f401re", "nucleo-f446re", "stm32f746g-disco", "nucleo-h743zi", "rpi-pico", "nrf52840dk"]
    return {name: harness(tmp, name) for name in names}


def brr(clock_hz: int, baud: int = 115200) -> int:
    return (clock_hz + baud // 2) // baud


def test_f446_runs_rm0390s_sequence_to_180_mhz(exes):
    r = run(exes["nucleo-f446re"], *F4_CHIP)
    assert r.writes == [
        (F4_RCC + 0x40, 0x10000000),  # APB1ENR.PWREN
        (F4_PWR, 0x0000C000),  # PWR_CR.VOS = scale 1 (while the PLL is off)
        # PLLCFGR: M 8, N 180 << 6, P /2 (0), source HSI, Q 8 << 24; PLLR (bits 30:28) kept
        (F4_RCC + 4, 0x20000000 | 8 | 180 << 6 | 0 << 16 | 8 << 24),
        (F4_RCC, 0x01000083),  # PLLON
        (F4_PWR, 0x0001C000),  # ODEN after PLLRDY and VOSRDY
        (F4_PWR, 0x0003C000),  # ODSWEN after ODRDY
        (0x40023C00, 0x705),  # FLASH_ACR: 5 wait states, PRFTEN | ICEN | DCEN, before the switch
        (F4_RCC + 8, 5 << 10 | 4 << 13),  # CFGR: AHB /1, APB1 /4, APB2 /2, still on HSI
        (F4_RCC + 8, 5 << 10 | 4 << 13 | 2),  # SW = PLL
    ]
    assert r.state == 1 and r.hz == 180_000_000
    assert r.uart[0x08] == brr(45_000_000)  # USART2 on APB1 = 45 MHz


def test_f401_has_no_over_drive(exes):
    r = run(exes["nucleo-f401re"], *F4_CHIP)
    assert (F4_PWR, 0x00008000) in r.writes  # VOS scale 2
    assert not [v for a, v in r.writes if a == F4_PWR and v & 0x30000]  # never ODEN/ODSWEN
    assert r.last(F4_RCC + 4) & 0x0FFF7FFF == 8 | 168 << 6 | 1 << 16 | 7 << 24  # P /4 is code 1
    assert r.last(0x40023C00) == 0x702
    assert r.state == 1 and r.hz == 84_000_000 and r.uart[0x08] == brr(42_000_000)


def test_f746_starts_its_crystal_first(exes):
    r = run(exes["stm32f746g-disco"], *F4_CHIP)
    rcc_cr = [v for a, v in r.writes if a == F4_RCC]
    assert rcc_cr[0] == 0x83 | 1 << 16  # HSEON (no bypass: a crystal)
    assert r.last(F4_RCC + 4) & 0x0FFF7FFF == 25 | 432 << 6 | 0 << 16 | 1 << 22 | 9 << 24  # source HSE
    assert r.last(0x40023C00) == 0x307  # 7 wait states, PRFTEN | ARTEN
    assert r.state == 1 and r.hz == 216_000_000
    assert r.uart[0x0C] == brr(108_000_000)  # v2 layout: BRR at 0x0C; USART1 on APB2
    # No crystal: the oscillator step fails, bounded, and the chip stays on HSI.
    r = run(exes["stm32f746g-disco"], *F4_CHIP, "refuse", hex(F4_RCC), "0x20000")
    assert r.state == 2 and r.hz == 16_000_000
    assert r.polls[F4_RCC] >= WAIT_TRIES
    assert r.uart[0x0C] == brr(16_000_000)
    assert r.last(F4_RCC) & (1 << 16 | 1 << 24) == 0  # HSE and PLL off again
    assert not [v for a, v in r.writes if a == F4_RCC + 8 and v & 3]  # never switched


@pytest.mark.parametrize(
    "refused,state",
    [
        ((hex(F4_RCC), "0x2000000"), 3),  # PLLRDY never comes
        ((hex(F4_PWR + 4), "0x10000"), 4),  # over-drive not ready
        (("0x40023c00", "0xf"), 5),  # FLASH_ACR does not take the wait states
        ((hex(F4_RCC + 8), "0xc"), 6),  # SWS never says PLL
    ],
)
def test_f446_falls_back_to_hsi(exes, refused, state):
    r = run(exes["nucleo-f446re"], *F4_CHIP, "refuse", *refused)
    assert r.state == state and r.hz == 16_000_000
    assert r.uart[0x08] == brr(16_000_000)  # the divisor follows the clock in use
    cfgr = r.last(F4_RCC + 8)
    assert cfgr & 3 == 0 and cfgr & (0xF << 4 | 0x3F << 10) == 0  # SW = HSI, every prescaler /1
    assert r.last(F4_RCC) & 1 << 24 == 0  # PLL off
    if state != 6:
        assert not [v for a, v in r.writes if a == F4_RCC + 8 and v & 3]
    if state in (3, 4, 6):
        assert max(r.polls.values()) >= WAIT_TRIES  # the wait gave up: bounded


def test_f4_on_an_unimplemented_rcc(exes):
    """What the stand-in emulator does: every RCC read is 0 (QEMU's netduinoplus2)."""
    r = run(exes["nucleo-f446re"], "zero")
    assert r.state == 2 and r.hz == 16_000_000 and r.uart[0x08] == brr(16_000_000)
    assert r.polls[F4_RCC] >= WAIT_TRIES


def test_reset_clock_switch_touches_nothing(tmp_path):
    text = (paths.boards_dir() / "nucleo-f446re.toml").read_text()
    text = text.replace("full_speed = true ", "full_speed = false").replace(
        "clock_hz = 180_000_000", "clock_hz = 16_000_000"
    )
    text = text.replace("clock_hz = 45_000_000 ", "clock_hz = 16_000_000 ")
    f = tmp_path / "nucleo-f446re.toml"
    f.write_text(text)
    board = load_board_file(f)
    assert not board.clock.full_speed and board.clock_hz == 16_000_000
    r = run(harness(tmp_path, board), *F4_CHIP)
    assert r.writes == [] and r.state == 0 and r.hz == 16_000_000
    assert r.uart[0x08] == brr(16_000_000)


def test_h743_runs_rm0433s_sequence_to_400_mhz(exes):
    r = run(exes["nucleo-h743zi"], *H7_CHIP)
    assert r.writes == [
        (H7_PWR + 0xC, 0x2),  # CR3: LDOEN, SCUEN cleared (supply locked), bypass off
        (H7_PWR + 0x18, 0xC000),  # D3CR: VOS1
        (H7_RCC + 0x28, 0x02020000 | 4 << 4),  # PLLCKSELR: HSI, DIVM1 = 4 (DIVM2/3 kept)
        (H7_RCC + 0x2C, 0x01FF0000 | 3 << 2),  # PLLCFGR: 16 MHz in (RGE 8-16), wide VCO, DIVP/Q/R1EN
        (H7_RCC + 0x30, 49 | 1 << 9 | 3 << 16 | 1 << 24),  # PLL1DIVR: N 50, P 2, Q 4, R 2 (each - 1)
        (H7_RCC, 0x01000005),  # PLL1ON
        (0x52002000, 0x22),  # FLASH_ACR: 2 wait states, WRHIGHFREQ 2 (AXI 200 MHz)
        (H7_RCC + 0x18, 0x48),  # D1CFGR: core /1, HPRE /2, D1PPRE /2
        (H7_RCC + 0x1C, 0x440),  # D2CFGR: D2PPRE1 /2, D2PPRE2 /2
        (H7_RCC + 0x20, 0x40),  # D3CFGR: D3PPRE /2
        (H7_RCC + 0x10, 3),  # SW = PLL1
    ]
    assert r.state == 1 and r.hz == 400_000_000 and r.uart[0x0C] == brr(100_000_000)
    r = run(exes["nucleo-h743zi"], *H7_CHIP, "refuse", hex(H7_PWR + 0x18), "0x2000")  # VOSRDY never
    assert r.state == 4 and r.hz == 64_000_000 and r.uart[0x0C] == brr(64_000_000)
    assert r.polls[H7_PWR + 0x18] >= WAIT_TRIES
    r = run(exes["nucleo-h743zi"], *H7_CHIP, "refuse", hex(H7_RCC), "0x2000000")  # PLL1RDY never
    assert r.state == 3 and r.last(H7_RCC) & 1 << 24 == 0 and r.last(H7_RCC + 0x18) == 0


def test_rp2040_crystal_then_pll_sys_to_125_mhz(exes):
    r = run(exes["rpi-pico"], *RP_CHIP)
    assert r.writes == [
        (0x40024000, 0xAA0),  # XOSC_CTRL: 1-15 MHz range
        (0x4002400C, 47),  # XOSC_STARTUP: ~1 ms at 12 MHz in 256-cycle units
        (0x40024000, 0xFABAA0),  # ENABLE (through the set alias)
        (0x40008030, 2),  # CLK_REF_CTRL.SRC = XOSC
        (0x4000C000, 0x01FFFFFF),  # RESETS: pll_sys into reset (set alias) ...
        (0x4000C000, 0x01FFEFFF),  # ... and out (clear alias)
        (0x40028000, 1),  # CS.REFDIV = 1
        (0x40028008, 125),  # FBDIV_INT = 125: VCO 1500 MHz
        (0x40028004, 0x0C),  # PWR: PD and VCOPD cleared
        (0x4002800C, 6 << 16 | 2 << 12),  # PRIM: POSTDIV1 6, POSTDIV2 2 (after LOCK)
        (0x40028004, 0x04),  # PWR: POSTDIVPD cleared
        (0x4000803C, 0),  # CLK_SYS_CTRL: AUXSRC = PLL_SYS while SRC is clk_ref
        (0x4000803C, 1),  # SRC = aux
        (0x40008048, 0x800),  # CLK_PERI_CTRL: enabled, from clk_sys
    ]
    assert r.state == 1 and r.hz == 125_000_000
    div64 = (8 * 125_000_000 // 115200 + 1) // 2
    assert (r.uart[0x24], r.uart[0x28]) == (div64 >> 6, div64 & 63)  # IBRD 67, FBRD 52
    r = run(exes["rpi-pico"], *RP_CHIP, "refuse", "0x40028000", "0x80000000")  # no LOCK
    assert r.state == 3 and r.hz == 12_000_000
    assert (r.uart[0x24] << 6) + r.uart[0x28] == (8 * 12_000_000 // 115200 + 1) // 2
    assert not [v for a, v in r.writes if a == 0x4000803C and v & 1]  # clk_sys never left the crystal
    r = run(exes["rpi-pico"], *RP_CHIP, "refuse", "0x40024004", "0x80000000")  # the crystal never settles
    assert r.state == 2 and r.polls[0x40024004] >= WAIT_TRIES
    assert (0x40008030, 2) not in r.writes  # clk_ref stays on the ring oscillator


def test_nrf52_starts_the_crystal_and_the_cache(exes):
    r = run(exes["nrf52840dk"], *NRF_CHIP)
    assert r.writes == [(0x40000100, 0), (0x40000000, 1), (0x4001E540, 1)]
    assert r.state == 1 and r.hz == 64_000_000 and r.uart[0x524] == 0x01D7E000
    r = run(exes["nrf52840dk"], *NRF_CHIP, "refuse", "0x40000100", "1")
    assert r.state == 2 and r.hz == 64_000_000 and r.polls[0x40000100] >= WAIT_TRIES
    assert (0x4001E540, 1) not in r.writes
