"""Board files: one TOML file per board under ``boards/``, the single source of truth for
the CPU flags, memory map, UART, instruction/cycle counter, QEMU machine and flasher."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from mcuflow import paths
from mcuflow.errors import ConfigError

CPUS = ("cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33")
FPUS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
FLOAT_ABIS = ("soft", "softfp", "hard")
# Driver name -> the one C file implementing it (under firmware/).
UART_DRIVERS = {
    "cmsdk-apb-uart": "uart/cmsdk_apb_uart.c",
    "stm32-usart-v1": "uart/stm32_usart_v1.c",
    "stm32-usart-v2": "uart/stm32_usart_v2.c",
    "nrf52-uarte": "uart/nrf52_uarte.c",
    "pl011": "uart/pl011.c",
}
# Drivers that can sleep (WFI) until their RX interrupt instead of polling, given uart.rx_irq.
RX_IRQ_DRIVERS = ("cmsdk-apb-uart", "stm32-usart-v1")
CHIPS = {"none": "chip/none.c", "stm32": "chip/stm32.c", "rp2040": "chip/rp2040.c"}
COUNTERS = {"systick": "counter/systick.c", "dwt": "counter/dwt.c"}
# Clock setup per chip family (firmware/clock/): PLL, regulator, flash wait states, prescalers.
CLOCK_DRIVERS = {
    "stm32f4": "clock/stm32f4f7.c",
    "stm32f7": "clock/stm32f4f7.c",
    "stm32h7": "clock/stm32h7.c",
    "nrf52": "clock/nrf52.c",
    "rp2040": "clock/rp2040.c",
}
# What each family's manual allows (RM0368/RM0390 STM32F4, RM0385 STM32F7, RM0433 STM32H7, RP2040
# datasheet 2.18): PLL input and VCO ranges in Hz, divider ranges, and the HCLK one more flash wait
# state buys at 2.7-3.6 V (H7: voltage scale 1).
_PLL_LIMITS = {
    "stm32f4": dict(vco_in=(950_000, 2_100_000), vco=(100_000_000, 432_000_000), m=(2, 63), n=(50, 432),
                    p=(2, 4, 6, 8), ws_step=30_000_000),
    "stm32f7": dict(vco_in=(950_000, 2_100_000), vco=(100_000_000, 432_000_000), m=(2, 63), n=(50, 432),
                    p=(2, 4, 6, 8), ws_step=30_000_000),
    "stm32h7": dict(vco_in=(1_000_000, 16_000_000), vco=(192_000_000, 836_000_000), m=(1, 63), n=(4, 512),
                    p=tuple(range(2, 129, 2)), ws_step=70_000_000),
    "rp2040": dict(vco_in=(5_000_000, 800_000_000), vco=(750_000_000, 1_600_000_000), m=(1, 63), n=(16, 320),
                   p=(1, 2, 3, 4, 5, 6, 7), ws_step=None),
}  # fmt: skip
UNITS = ("instructions", "cycles")
FLASH_TOOLS = ("pyocd", "openocd")
# RP2040 second-stage boot loaders shipped under firmware/boot2/ (name -> file).
BOOT2_STAGES = {"generic-03h": "boot2/generic_03h.S"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class UartPin:
    gpio: int
    pin: int
    af: int


@dataclass(frozen=True)
class UartConfig:
    driver: str
    base: int
    baud: int
    clock_hz: int
    tx_pin: int | None = None
    rx_pin: int | None = None
    rx_irq: int | None = None
    clock_enables: tuple[tuple[int, int], ...] = ()
    pins: tuple[UartPin, ...] = ()

    @property
    def baud_reg(self) -> int | None:
        """nRF52 BAUDRATE register value: baud * 2^32 / 16 MHz, rounded to the 4 KiB steps Nordic uses."""
        if self.driver != "nrf52-uarte":
            return None
        return (round(self.baud * (1 << 32) / 16_000_000) + 0x800) & ~0xFFF


@dataclass(frozen=True)
class CounterConfig:
    kind: str
    unit: str
    systick_hz: int | None = None

    @property
    def per_tick(self) -> Fraction:
        """Units per SysTick tick: under QEMU -icount shift=0 one instruction is 1 ns of virtual time."""
        if self.kind == "systick" and self.unit == "instructions":
            return Fraction(1_000_000_000, self.systick_hz or 1)
        return Fraction(1)

    @property
    def tick_num(self) -> int:
        return self.per_tick.numerator

    @property
    def tick_den(self) -> int:
        return self.per_tick.denominator


@dataclass(frozen=True)
class ClockConfig:
    """The clock tree the firmware sets up (``[clock]``), or with ``full_speed = false`` the reset
    clock it keeps. The firmware falls back to the reset clock when a step does not complete.

    STM32: ``source`` hsi/hse feeds PLL M/N/P (Q, R: the other outputs, kept in range); the core
    clock is VCO / P (H7: VCO / P / ``core_div``), AHB = core / ``ahb_div``, the APBs / ``apb1_div``,
    ``apb2_div`` (H7: every APB / ``apb1_div``). RP2040: XOSC / M (REFDIV) * N (FBDIV) / P (POSTDIV1)
    / Q (POSTDIV2). nRF52: the 64 MHz core clock is fixed; full speed starts the 32 MHz crystal."""

    driver: str
    full_speed: bool
    reset_hz: int
    source: str = "hsi"
    source_hz: int = 0
    hse_bypass: bool = False
    pll_m: int = 0
    pll_n: int = 0
    pll_p: int = 0
    pll_q: int = 0
    pll_r: int = 0
    core_div: int = 1
    ahb_div: int = 1
    apb1_div: int = 1
    apb2_div: int = 1
    flash_latency: int = 0
    voltage_scale: int = 0
    overdrive: bool = False
    uart_bus: str = "apb1"

    @property
    def family_macro(self) -> str:
        """The board_config.h name of the family: BOARD_CLOCK_<this>."""
        return self.driver.upper()

    @property
    def vco_in_hz(self) -> int:
        return self.source_hz // self.pll_m if self.pll_m else 0

    @property
    def vco_hz(self) -> int:
        return self.vco_in_hz * self.pll_n

    @property
    def pll_hz(self) -> int:
        """The PLL output that becomes the system clock."""
        if self.driver == "rp2040":
            return self.vco_hz // (self.pll_p * self.pll_q)
        return self.vco_hz // self.pll_p if self.pll_p else 0

    @property
    def core_hz(self) -> int:
        if not self.full_speed:
            return self.reset_hz
        if self.driver == "nrf52":
            return self.reset_hz
        return self.pll_hz // self.core_div

    @property
    def ahb_hz(self) -> int:
        return self.core_hz // self.ahb_div if self.full_speed else self.reset_hz

    def bus_hz(self, bus: str) -> int:
        if not self.full_speed or self.driver in ("rp2040", "nrf52"):
            return self.core_hz
        return self.ahb_hz // (self.apb2_div if bus == "apb2" else self.apb1_div)


@dataclass(frozen=True)
class QemuConfig:
    machine: str
    serial_index: int = 0
    # Sensor replay: memory the machine has and the firmware does not use, where `mcuflow hil` puts the
    # input table before boot (QEMU's generic loader); 0 bytes: the board has none.
    replay_addr: int = 0
    replay_bytes: int = 0


@dataclass(frozen=True)
class EmulationConfig:
    """A QEMU machine that runs a hardware board's own image unmodified: same core, the board's
    UART at the same base, flash and RAM where the board has them (at least as large)."""

    machine: str
    serial_index: int
    flash_bytes: int  # the stand-in's flash and RAM at the board's origins
    ram_bytes: int
    notes: str = ""


@dataclass(frozen=True)
class EnergyConfig:
    """A simple energy model (``[energy]``, read by ``mcuflow plan``): the board draws ``active_mw`` while
    the core runs, one cycle (QEMU: one instruction) costs ``active_mw / clock_hz``, and a byte on the UART
    keeps the core running (the firmware polls while it sends) for its 10 bit times at the UART's baud.
    ``source`` says where the figure comes from."""

    active_mw: float
    source: str


@dataclass(frozen=True)
class ChipId:
    """An ID register the flasher reads before writing: (value at `address`) & `mask` == `value`."""

    name: str
    address: int
    mask: int
    value: int


@dataclass(frozen=True)
class FlasherConfig:
    tool: str
    target: str | None = None
    configs: tuple[str, ...] = ()
    chip_id: ChipId | None = None


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cpu: str
    fpu: str
    float_abi: str
    clock_hz: int
    chip: str
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    stack_bytes: int
    uart: UartConfig
    counter: CounterConfig
    boot2_bytes: int = 0
    boot2: str | None = None  # the second-stage boot loader built into the slot (firmware/boot2/<name>.S)
    irqs: int | None = None  # the chip's external interrupt lines (vector table entries after the 16)
    clock: ClockConfig | None = None
    qemu: QemuConfig | None = None
    emulation: EmulationConfig | None = None
    flasher: FlasherConfig | None = None
    energy: EnergyConfig | None = None
    notes: str = ""
    path: Path | None = field(default=None, compare=False)

    @property
    def is_qemu(self) -> bool:
        return self.qemu is not None

    def emulator(self, emulate: bool = False) -> QemuConfig | None:
        """The QEMU machine that runs this board's image: its own ([qemu]) or, when `emulate`, the
        hardware board's stand-in ([emulation]); None when there is none."""
        if self.qemu is not None:
            return self.qemu
        if emulate and self.emulation is not None:
            return QemuConfig(machine=self.emulation.machine, serial_index=self.emulation.serial_index)
        return None

    def cflags(self) -> list[str]:
        """Code-generation flags for arm-none-eabi-gcc."""
        flags = [f"-mcpu={self.cpu}", "-mthumb", f"-mfloat-abi={self.float_abi}"]
        if self.fpu != "none":
            flags.append(f"-mfpu={self.fpu}")
        return flags

    def firmware_sources(self) -> list[str]:
        """The port's C files, relative to firmware/."""
        clock = ["clock/clock.c", CLOCK_DRIVERS[self.clock.driver]] if self.clock else []
        return [CHIPS[self.chip], *clock, UART_DRIVERS[self.uart.driver], COUNTERS[self.counter.kind]]

    @property
    def uart_reset_clock_hz(self) -> int:
        """The UART's input clock when the clock setup falls back to (or stays at) reset clocks."""
        if self.clock is None or self.uart.driver == "nrf52-uarte":
            return self.uart.clock_hz
        return self.clock.reset_hz  # every prescaler is 1 after reset on these chips


class _Table:
    """Reads one TOML table, naming the file and key in every error and rejecting unknown keys."""

    def __init__(self, data: Any, where: str, source: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{where}] must be a table")
        self.data, self.where, self.source, self.used = data, where, source, set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self._name(key)} {msg}")

    def get(self, key: str, kind: type | tuple, default: Any = ..., choices: Any = None) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.err(key, "is missing")
            return default
        v = self.data[key]
        if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.err(key, f"must be {names}, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(key, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def uint(self, key: str, default: Any = ..., minimum: int = 0) -> Any:
        v = self.get(key, int, default)
        if key in self.data and not minimum <= v < 1 << 32:
            raise self.err(key, f"must be between {minimum} and 0xFFFFFFFF, got {v}")
        return v

    def table(self, key: str, optional: bool = False) -> _Table | None:
        self.used.add(key)
        if key not in self.data:
            if optional:
                return None
            raise self.err(key, "is missing (a [" + self._name(key) + "] table)")
        return _Table(self.data[key], self._name(key), self.source)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.err(unknown[0], "is not a known board setting")


def parse_board(data: dict, source: str = "<board>", path: Path | None = None) -> Board:
    """Validate a parsed board file. Raises ConfigError naming the file and the offending key."""
    top = _Table(data, "", source)
    name = top.get("name", str)
    if not _NAME.match(name):
        raise top.err("name", f"must be lower-case letters, digits, '-', '.', '_'; got {name!r}")
    cpu = top.get("cpu", str, choices=CPUS)
    fpu = top.get("fpu", str, "none", choices=FPUS)
    float_abi = top.get("float_abi", str, "soft" if fpu == "none" else "hard", choices=FLOAT_ABIS)
    if fpu == "none" and float_abi != "soft":
        raise top.err("float_abi", f"must be 'soft' when fpu is 'none', got {float_abi!r}")
    if fpu != "none" and cpu not in ("cortex-m4", "cortex-m7", "cortex-m33"):
        raise top.err("fpu", f"{fpu!r} is not available on {cpu}")

    mem = top.table("memory")
    flash_origin, flash_bytes = mem.uint("flash_origin"), mem.uint("flash_bytes", minimum=1)
    ram_origin, ram_bytes = mem.uint("ram_origin"), mem.uint("ram_bytes", minimum=1)
    mem.finish()
    if flash_origin + flash_bytes > 1 << 32 or ram_origin + ram_bytes > 1 << 32:
        raise mem.err("flash_bytes", "makes a region run past the 4 GiB address space")
    if flash_origin < ram_origin + ram_bytes and ram_origin < flash_origin + flash_bytes:
        raise mem.err("ram_origin", "makes RAM overlap flash")

    u = top.table("uart")
    driver = u.get("driver", str, choices=tuple(UART_DRIVERS))
    uart_kwargs: dict[str, Any] = dict(
        driver=driver, base=u.uint("base"), baud=u.uint("baud", minimum=1), clock_hz=u.uint("clock_hz", minimum=1)
    )
    if driver == "nrf52-uarte":
        uart_kwargs["tx_pin"], uart_kwargs["rx_pin"] = u.uint("tx_pin"), u.uint("rx_pin")
    uart_kwargs["rx_irq"] = u.uint("rx_irq", None)
    if uart_kwargs["rx_irq"] is not None and (driver not in RX_IRQ_DRIVERS or uart_kwargs["rx_irq"] > 239):
        raise u.err("rx_irq", f"(sleep while waiting for input) works with {', '.join(RX_IRQ_DRIVERS)}, IRQ 0..239")
    enables = u.get("clock_enables", list, [])
    for i, item in enumerate(enables):
        ok = isinstance(item, list) and len(item) == 2 and all(isinstance(x, int) and 0 <= x < 1 << 32 for x in item)
        if not ok:
            raise u.err(f"clock_enables[{i}]", f"must be [address, mask], got {item!r}")
    uart_kwargs["clock_enables"] = tuple((a, m) for a, m in enables)
    pins = []
    for i, item in enumerate(u.get("pins", list, [])):
        p = _Table(item, f"{u.where}.pins[{i}]", source)
        pins.append(UartPin(gpio=p.uint("gpio"), pin=p.uint("pin"), af=p.uint("af")))
        p.finish()
        if pins[-1].pin > 15 or pins[-1].af > 15:
            raise p.err("pin", "and af must be 0..15")
    uart_kwargs["pins"] = tuple(pins)
    u.finish()
    uart = UartConfig(**uart_kwargs)
    if uart.clock_hz < uart.baud * 16 and driver != "nrf52-uarte":
        raise u.err("clock_hz", f"{uart.clock_hz} is too slow for {uart.baud} baud (needs 16x oversampling)")

    q = top.table("qemu", optional=True)
    qemu = None
    if q is not None:
        qemu = QemuConfig(
            machine=q.get("machine", str),
            serial_index=q.uint("serial_index", 0),
            replay_addr=q.uint("replay_addr", 0),
            replay_bytes=q.uint("replay_bytes", 0),
        )
        if (qemu.replay_addr == 0) != (qemu.replay_bytes == 0) or qemu.replay_addr % 4:
            raise q.err("replay_addr", "and replay_bytes go together, the address word-aligned")
        if qemu.replay_bytes and _overlaps(qemu.replay_addr, qemu.replay_bytes, ram_origin, ram_bytes):
            raise q.err("replay_addr", "must not overlap the firmware's RAM (the input table would be overwritten)")
        q.finish()

    e = top.table("emulation", optional=True)
    emulation = None
    if e is not None:
        emulation = EmulationConfig(
            machine=e.get("machine", str),
            serial_index=e.uint("serial_index", 0),
            flash_bytes=e.uint("flash_bytes", minimum=1),
            ram_bytes=e.uint("ram_bytes", minimum=1),
            notes=e.get("notes", str, ""),
        )
        e.finish()
        if qemu is not None:
            raise e.err("machine", "is for hardware boards: a [qemu] board runs on its own machine")
        # The image is linked for the board: it runs unmodified only where the stand-in has at
        # least the board's flash and RAM at the same addresses.
        if flash_bytes > emulation.flash_bytes or ram_bytes > emulation.ram_bytes:
            raise e.err(
                "ram_bytes",
                f"the stand-in ({emulation.machine}) has less flash or RAM than the board; its image would not run",
            )

    c = top.table("counter")
    kind = c.get("kind", str, choices=tuple(COUNTERS))
    unit = c.get("unit", str, "instructions" if qemu else "cycles", choices=UNITS)
    systick_hz = c.uint("systick_hz", None, minimum=1)
    c.finish()
    if kind == "dwt" and qemu:
        raise c.err("kind", "'dwt' does not work under QEMU (DWT is not emulated); use 'systick'")
    if kind == "dwt" and cpu in ("cortex-m0", "cortex-m0plus"):
        raise c.err("kind", f"'dwt' has no cycle counter on {cpu}; use 'systick'")
    if unit == "instructions" and not qemu:
        raise c.err("unit", "'instructions' needs a [qemu] board (-icount); hardware counts cycles")
    if unit == "instructions" and not systick_hz:
        raise c.err("systick_hz", "is missing (the SysTick clock of the QEMU machine)")
    counter = CounterConfig(kind=kind, unit=unit, systick_hz=systick_hz)

    clock = _parse_clock(top, qemu is not None)

    f = top.table("flasher", optional=True)
    flasher = None
    if f is not None:
        tool = f.get("tool", str, choices=FLASH_TOOLS)
        target = f.get("target", str, None)
        configs = f.get("configs", list, [])
        cid = f.table("chip_id", optional=True)
        chip_id = None
        if cid is not None:
            chip_id = ChipId(
                name=cid.get("name", str),
                address=cid.uint("address"),
                mask=cid.uint("mask", minimum=1),
                value=cid.uint("value"),
            )
            cid.finish()
            if chip_id.value & ~chip_id.mask:
                raise cid.err("value", f"0x{chip_id.value:X} has bits outside the mask 0x{chip_id.mask:X}")
        f.finish()
        if tool == "pyocd" and not target:
            raise f.err("target", "is missing (the pyocd target name, see `pyocd list --targets`)")
        if tool == "openocd" and (not configs or not all(isinstance(x, str) for x in configs)):
            raise f.err("configs", "must list openocd config files (e.g. ['interface/cmsis-dap.cfg', ...])")
        flasher = FlasherConfig(tool=tool, target=target, configs=tuple(configs), chip_id=chip_id)

    en = top.table("energy", optional=True)
    energy = None
    if en is not None:
        mw = en.get("active_mw", (int, float))
        if not 0 < mw < 10_000:
            raise en.err("active_mw", f"must be a power in mW between 0 and 10000, got {mw}")
        energy = EnergyConfig(active_mw=float(mw), source=en.get("source", str))
        en.finish()

    board = Board(
        name=name,
        description=top.get("description", str, ""),
        cpu=cpu,
        fpu=fpu,
        float_abi=float_abi,
        clock_hz=top.uint("clock_hz", minimum=1),
        chip=top.get("chip", str, "none", choices=tuple(CHIPS)),
        flash_origin=flash_origin,
        flash_bytes=flash_bytes,
        ram_origin=ram_origin,
        ram_bytes=ram_bytes,
        stack_bytes=top.uint("stack_bytes", 2048, minimum=256),
        boot2_bytes=top.uint("boot2_bytes", 0),
        boot2=top.get("boot2", str, None, choices=BOOT2_STAGES),
        irqs=top.uint("irqs", None),
        clock=clock,
        uart=uart,
        counter=counter,
        qemu=qemu,
        emulation=emulation,
        flasher=flasher,
        energy=energy,
        notes=top.get("notes", str, ""),
        path=path,
    )
    top.finish()
    if (board.boot2 is None) != (board.boot2_bytes == 0) or board.boot2_bytes not in (0, 256):
        # The RP2040 boot ROM loads exactly 256 bytes (252 + CRC-32); an empty slot never boots.
        raise top.err("boot2", "and boot2_bytes = 256 go together: the slot needs a stage, a stage needs the slot")
    if clock is not None:
        _check_clock(board, top, u)
    elif board.chip == "rp2040":
        raise top.err("clock", "is missing: the RP2040's UART needs its crystal started (a [clock] table)")
    if board.irqs is not None and not 1 <= board.irqs <= 496:
        raise top.err("irqs", f"must be 1..496 (the NVIC's limit), got {board.irqs}")
    if board.irqs is not None and uart.rx_irq is not None and uart.rx_irq >= board.irqs:
        raise u.err("rx_irq", f"{uart.rx_irq} is past the chip's {board.irqs} interrupts (irqs)")
    if board.stack_bytes % 8:
        raise top.err("stack_bytes", f"must be a multiple of 8, got {board.stack_bytes}")
    return board


def _overlaps(a: int, a_len: int, b: int, b_len: int) -> bool:
    return a < b + b_len and b < a + a_len


def _parse_clock(top: _Table, is_qemu: bool) -> ClockConfig | None:
    t = top.table("clock", optional=True)
    if t is None:
        return None
    if is_qemu:
        raise t.err("driver", "is for hardware boards: a QEMU machine runs at the emulator's clock")
    driver = t.get("driver", str, choices=tuple(CLOCK_DRIVERS))
    kw: dict[str, Any] = dict(
        driver=driver, full_speed=t.get("full_speed", bool, True), reset_hz=t.uint("reset_hz", minimum=1)
    )
    if driver.startswith("stm32"):
        kw["source"] = t.get("source", str, "hsi", choices=("hsi", "hse"))
        kw["source_hz"] = t.uint("source_hz", kw["reset_hz"] if kw["source"] == "hsi" else ..., minimum=1)
        kw["hse_bypass"] = t.get("hse_bypass", bool, False)
        for k in ("pll_m", "pll_n", "pll_p", "pll_q"):
            kw[k] = t.uint(k, minimum=1)
        if driver == "stm32h7":
            kw["pll_r"] = t.uint("pll_r", minimum=1)
            kw["core_div"] = t.uint("core_div", 1, minimum=1)
        kw["ahb_div"] = t.uint("ahb_div", 1, minimum=1)
        kw["apb1_div"] = t.uint("apb1_div", 1, minimum=1)
        if driver != "stm32h7":
            kw["apb2_div"] = t.uint("apb2_div", 1, minimum=1)
        kw["flash_latency"] = t.uint("flash_latency")
        kw["voltage_scale"] = t.uint("voltage_scale", minimum=1)
        kw["overdrive"] = t.get("overdrive", bool, False)
        kw["uart_bus"] = t.get("uart_bus", str, "apb1", choices=("apb1", "apb2"))
    elif driver == "rp2040":
        kw["source"], kw["source_hz"] = "xosc", t.uint("source_hz", minimum=1)
        for k in ("pll_m", "pll_n", "pll_p", "pll_q"):
            kw[k] = t.uint(k, minimum=1)
    else:
        kw["source"] = "hfxo"
    t.finish()
    return ClockConfig(**kw)


def _check_clock(board: Board, top: _Table, u: _Table) -> None:
    """The clock tree against the manual's limits and the board file's own claims: the core and
    UART clocks it states must be the ones the settings give."""
    c = board.clock
    where = _Table({}, "clock", top.source)
    if c.driver in _PLL_LIMITS and c.full_speed:
        lim = _PLL_LIMITS[c.driver]
        for key, rng in (("pll_m", lim["m"]), ("pll_n", lim["n"])):
            if not rng[0] <= getattr(c, key) <= rng[1]:
                raise where.err(key, f"must be {rng[0]}..{rng[1]} on {c.driver}, got {getattr(c, key)}")
        if c.pll_p not in lim["p"]:
            raise where.err(
                "pll_p", f"must be one of {', '.join(map(str, lim['p'][:8]))}... on {c.driver}, got {c.pll_p}"
            )
        if not lim["vco_in"][0] <= c.vco_in_hz <= lim["vco_in"][1]:
            raise where.err(
                "pll_m", f"gives a PLL input of {c.vco_in_hz:,} Hz, outside {lim['vco_in'][0]:,}..{lim['vco_in'][1]:,}"
            )
        if not lim["vco"][0] <= c.vco_hz <= lim["vco"][1]:
            raise where.err("pll_n", f"gives a VCO of {c.vco_hz:,} Hz, outside {lim['vco'][0]:,}..{lim['vco'][1]:,}")
        if lim["ws_step"]:
            need = -(-c.ahb_hz // lim["ws_step"]) - 1
            if c.flash_latency < need:
                raise where.err(
                    "flash_latency", f"{c.flash_latency} is too few wait states for {c.ahb_hz:,} Hz (needs {need})"
                )
        for key in ("ahb_div",):
            if getattr(c, key) not in (1, 2, 4, 8, 16, 64, 128, 256, 512):
                raise where.err(key, f"must be a power of two the prescaler has, got {getattr(c, key)}")
        for key in ("apb1_div", "apb2_div", "core_div"):
            if getattr(c, key) not in (1, 2, 4, 8, 16):
                raise where.err(key, f"must be 1, 2, 4, 8 or 16, got {getattr(c, key)}")
    if board.clock_hz != c.core_hz:
        raise top.err("clock_hz", f"is {board.clock_hz:,} but the [clock] settings give {c.core_hz:,} Hz")
    if board.uart.driver != "nrf52-uarte" and board.uart.clock_hz != c.bus_hz(c.uart_bus):
        raise u.err("clock_hz", f"is {board.uart.clock_hz:,} but the [clock] settings give the UART "
                    f"{c.bus_hz(c.uart_bus):,} Hz")  # fmt: skip


def load_board_file(path: Path) -> Board:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"board file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    board = parse_board(data, source=str(path), path=path)
    return board


def board_names() -> list[str]:
    return sorted(p.stem for p in paths.boards_dir().glob("*.toml"))


def load_board(board: str | Path) -> Board:
    """A board by name (``boards/<name>.toml``) or by path to a board file."""
    s = str(board)
    if s.endswith(".toml") or "/" in s or "\\" in s:
        return load_board_file(Path(s))
    path = paths.boards_dir() / f"{s}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown board {s!r}; known boards: {', '.join(board_names())}")
    b = load_board_file(path)
    if b.name != path.stem:
        raise ConfigError(f"{path}: name {b.name!r} does not match the file name {path.stem!r}")
    return b


def list_boards() -> list[Board]:
    return [load_board(n) for n in board_names()]
