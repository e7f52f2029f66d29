"""Static checks of a firmware image against its board file, for every image and above all for
those no emulator runs: what would make a first flash fail silently (a core that never leaves
reset, a UART on the wrong address or baud) is visible in the ELF before it reaches a board.

The ELF is read with a small parser of its own (ELF32 little-endian, the only kind
arm-none-eabi-gcc makes for Cortex-M): a few dozen lines of ``struct`` against a fixed format, no
new dependency, and no parsing of binutils' text output. What the drivers were compiled with
comes from the image's build facts (``firmware/include/facts.h``), not from the board file again.

Checks: the initial stack pointer lies in RAM; the reset vector and every handler lie in flash
with the Thumb bit set; the vector table starts the image (after boot2) and has no more entries
than the chip has interrupts, and enough for the one the UART uses; every section and load image
lies inside the board's memory map; the UART base, IRQ, baud and divisor agree with the board
file and the divisor gives the baud within 2 % at the UART's clock; an RP2040 boot2 stage carries
the CRC the boot ROM checks. ``check_image`` lists them; ``require_good_image`` raises the first
failure as one line.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from mcuflow.boards import Board
from mcuflow.errors import ImageCheckError

BAUD_TOLERANCE = 0.02  # a UART receiver samples mid-bit: both ends together may be off ~4 %
BOOT2_BYTES = 256  # RP2040: the boot ROM loads 256 bytes, the last 4 the CRC of the first 252
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
SHT_NOBITS, SHT_SYMTAB = 8, 2
PT_LOAD = 1
EM_ARM = 40
FACT = struct.Struct("<28sI")
# Vector table slots 7-10 and 13 are reserved on every Cortex-M: 0 there is fine.
RESERVED_VECTORS = {7, 8, 9, 10, 13}


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


@dataclass
class Elf:
    """The parts of an ELF32 little-endian ARM executable the checks need."""

    data: bytes
    entry: int
    sections: dict[str, Section]
    segments: list[Segment]
    symbols: dict[str, tuple[int, int]]  # name -> (value, size)

    @classmethod
    def read(cls, path: str | Path) -> Elf:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ImageCheckError(f"cannot read {path}: {err.strerror}") from None
        if data[:4] != b"\x7fELF" or len(data) < 52:
            raise ImageCheckError(f"{path} is not an ELF file")
        if data[4] != 1 or data[5] != 1:
            raise ImageCheckError(f"{path} is not a 32-bit little-endian ELF (not a Cortex-M image)")
        (e_type, machine, _v, entry, phoff, shoff, _fl, _eh, phentsize, phnum, shentsize, shnum, shstrndx) = (
            struct.unpack_from("<HHIIIIIHHHHHH", data, 16)
        )
        if machine != EM_ARM or e_type != 2:
            raise ImageCheckError(f"{path} is not an ARM executable (ELF machine {machine}, type {e_type})")
        try:
            raw = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
            strtab = raw[shstrndx]
            sections = {}
            for name_off, typ, flags, addr, offset, size, *_ in raw:
                name = _cstr(data, strtab[4] + name_off)
                sections[name] = Section(name, typ, flags, addr, offset, size)
            segments = [Segment(*struct.unpack_from("<IIIIII", data, phoff + i * phentsize)) for i in range(phnum)]
            symbols = {}
            for _name, typ, _fl, _a, offset, size, link, *_ in raw:
                if typ != SHT_SYMTAB:
                    continue
                names = raw[link][4]
                for j in range(0, size, 16):
                    st_name, value, sym_size, _info, _other, _shndx = struct.unpack_from("<IIIBBH", data, offset + j)
                    if st_name:
                        symbols[_cstr(data, names + st_name)] = (value, sym_size)
        except (struct.error, IndexError):
            raise ImageCheckError(f"{path} is a damaged ELF file (its tables run past the end)") from None
        return cls(data, entry, sections, segments, symbols)

    def read_addr(self, addr: int, size: int) -> bytes | None:
        """`size` bytes at address `addr` as the image loads them (from a PT_LOAD segment's file image)."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.paddr <= addr and addr + size <= seg.paddr + seg.filesz:
                start = seg.offset + addr - seg.paddr
                return self.data[start : start + size]
        return None

    def load_segments(self) -> list[tuple[int, bytes]]:
        """What a flasher writes: each loaded segment's load address and bytes."""
        return [
            (g.paddr, self.data[g.offset : g.offset + g.filesz])
            for g in self.segments
            if g.type == PT_LOAD and g.filesz
        ]

    def facts(self) -> dict[str, int]:
        sec = self.sections.get(".mcuflow.facts")
        if sec is None:
            return {}
        out = {}
        for off in range(sec.offset, sec.offset + sec.size - FACT.size + 1, FACT.size):
            name, value = FACT.unpack_from(self.data, off)
            out[name.rstrip(b"\0").decode("ascii", "replace")] = value
        return out


def _cstr(data: bytes, off: int) -> str:
    end = data.index(b"\0", off)
    return data[off:end].decode("ascii", "replace")


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2, what the RP2040 boot ROM checks boot2 with: polynomial 0x04C11DB7, initial
    value 0xFFFFFFFF, no reflection, no final XOR (RP2040 datasheet 2.8.1.3.1)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def uart_baud(driver: str, clock_hz: int, divisor: int) -> float:
    """The baud the UART hardware makes of `divisor` at `clock_hz` (each reference manual's formula)."""
    if driver in ("stm32-usart-v1", "stm32-usart-v2", "cmsdk-apb-uart"):
        return clock_hz / divisor if divisor else 0.0  # 16x oversampling: BRR = mantissa.fraction
    if driver == "pl011":
        return 4 * clock_hz / divisor if divisor else 0.0  # clock / (16 * (IBRD + FBRD / 64))
    if driver == "nrf52-uarte":
        return divisor * 16_000_000 / (1 << 32)  # BAUDRATE = baud * 2^32 / 16 MHz
    raise ValueError(driver)


@dataclass
class ImageCheck:
    """What `check_image` found: the checks that passed and one line per problem."""

    elf: Path
    board: str
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def expect(self, ok: bool, passed: str, problem: str) -> bool:
        (self.passed if ok else self.problems).append(passed if ok else problem)
        return ok


def _range(lo: int, size: int) -> str:
    return f"0x{lo:08X}..0x{lo + size:08X}"


def check_image(elf_path: str | Path, board: Board) -> ImageCheck:
    """Every check of the module docstring on the ELF at `elf_path`, against `board`."""
    elf = Elf.read(elf_path)
    rep = ImageCheck(Path(elf_path), board.name)
    flash = (board.flash_origin, board.flash_origin + board.flash_bytes)
    ram = (board.ram_origin, board.ram_origin + board.ram_bytes)

    def in_flash(a: int, n: int = 1) -> bool:
        return flash[0] <= a and a + n <= flash[1]

    def in_ram(a: int, n: int = 1) -> bool:
        return ram[0] <= a and a + n <= ram[1]

    _check_vectors(elf, board, rep, in_flash, in_ram)
    _check_memory_map(elf, board, rep, in_flash, in_ram)
    facts = elf.facts()
    if rep.expect(
        bool(facts),
        "build facts present",
        "the image carries no build facts (.mcuflow.facts): build it with `mcuflow build`",
    ):
        _check_uart(facts, board, rep)
        _check_clock(facts, board, rep)
    if board.boot2_bytes:
        _check_boot2(elf, board, rep)
    return rep


def _check_vectors(elf: Elf, board: Board, rep: ImageCheck, in_flash, in_ram) -> None:
    table = board.flash_origin + board.boot2_bytes
    where = "at the start of flash" if not board.boot2_bytes else f"after the {board.boot2_bytes}-byte boot2 slot"
    sym = elf.symbols.get("vector_table")
    addr, size = sym if sym else (table, 0)
    if not rep.expect(
        addr == table,
        f"vector table {where} (0x{table:08X})",
        f"the vector table is at 0x{addr:08X}, not {where} (0x{table:08X}): the core would not start",
    ):
        return
    words = elf.read_addr(table, max(size, 8))
    if not rep.expect(
        words is not None and len(words) >= 8,
        "vector table in the load image",
        f"nothing is loaded at 0x{table:08X}, where the core reads its vector table",
    ):
        return
    entries = struct.unpack(f"<{len(words) // 4}I", words)
    sp, reset = entries[0], entries[1]
    rep.expect(
        in_ram(sp - 1, 1) and sp % 8 == 0,
        f"initial stack pointer 0x{sp:08X} at the top of RAM",
        f"initial stack pointer 0x{sp:08X} is outside RAM {_range(board.ram_origin, board.ram_bytes)}"
        if not in_ram(sp - 1, 1)
        else f"initial stack pointer 0x{sp:08X} is not 8-byte aligned",
    )
    text = elf.sections.get(".text")
    in_text = text is not None and text.addr <= (reset & ~1) < text.addr + text.size
    if not rep.expect(
        reset & 1 == 1,
        "reset vector has the Thumb bit",
        f"reset vector 0x{reset:08X} has the Thumb bit clear: the core would fault on its first instruction",
    ):
        pass
    elif rep.expect(
        in_flash(reset & ~1, 2) and in_text,
        f"reset vector 0x{reset:08X} in flash, in .text",
        f"reset vector 0x{reset:08X} is outside the flash code {_range(board.flash_origin, board.flash_bytes)}",
    ):
        rep.expect(
            elf.entry | 1 == reset,
            "reset vector is the ELF entry point",
            f"reset vector 0x{reset:08X} is not the ELF entry point 0x{elf.entry:08X} (Reset_Handler)",
        )
    bad = [
        i for i, v in enumerate(entries[2:16], 2) if i not in RESERVED_VECTORS and not (v & 1 and in_flash(v & ~1, 2))
    ]
    bad += [i for i, v in enumerate(entries[16:], 16) if not (v & 1 and in_flash(v & ~1, 2))]
    rep.expect(
        not bad,
        "every handler in flash with the Thumb bit",
        f"vector {bad[0] if bad else 0} (0x{entries[bad[0]] if bad else 0:08X}) is not a Thumb address in flash",
    )
    irqs = len(entries) - 16
    need = board.uart.rx_irq + 1 if board.uart.rx_irq is not None else 0
    if board.irqs is not None:
        rep.expect(
            0 <= irqs <= board.irqs,
            f"vector table: 16 + {irqs} entries (the chip has {board.irqs} IRQs)",
            f"the vector table has 16 + {irqs} entries; the chip has {board.irqs} interrupts (irqs)",
        )
    rep.expect(
        irqs >= need,
        f"vector table covers IRQ {need - 1}" if need else "vector table: no IRQ used",
        f"the vector table has 16 + {irqs} entries but the UART's IRQ {need - 1} needs 16 + {need}",
    )
    # VTOR holds bits [31:7] (M0+: [31:8]): a table the boot ROM points VTOR at must be aligned to that.
    if board.boot2_bytes:
        rep.expect(
            table % 256 == 0,
            "vector table 256-byte aligned (VTOR)",
            f"the vector table at 0x{table:08X} is not 256-byte aligned: VTOR cannot point at it",
        )


def _check_memory_map(elf: Elf, board: Board, rep: ImageCheck, in_flash, in_ram) -> None:
    outside = [
        s
        for s in elf.sections.values()
        if s.flags & SHF_ALLOC and s.size and not (in_flash(s.addr, s.size) or in_ram(s.addr, s.size))
    ]
    rep.expect(
        not outside,
        "every section inside the board's flash and RAM",
        f"section {outside[0].name} ({_range(outside[0].addr, outside[0].size)}) lies outside the board's "
        f"flash {_range(board.flash_origin, board.flash_bytes)} and RAM "
        f"{_range(board.ram_origin, board.ram_bytes)}"
        if outside
        else "",
    )
    code_in_ram = [
        s for s in elf.sections.values() if s.flags & SHF_EXECINSTR and s.size and not in_flash(s.addr, s.size)
    ]
    rep.expect(
        not code_in_ram,
        "code in flash",
        f"section {code_in_ram[0].name} holds code outside flash" if code_in_ram else "",
    )
    loads = [g for g in elf.segments if g.type == PT_LOAD and g.filesz]
    stray = [g for g in loads if not in_flash(g.paddr, g.filesz)]
    rep.expect(
        bool(loads) and not stray,
        "every load image in flash (what a flasher writes)",
        f"a load image ({_range(stray[0].paddr, stray[0].filesz)}) lies outside flash: a flasher cannot write it"
        if stray
        else "the image loads nothing",
    )


def _check_uart(facts: dict[str, int], board: Board, rep: ImageCheck) -> None:
    u = board.uart
    base = facts.get("uart_base")
    rep.expect(
        base == u.base,
        f"UART base 0x{u.base:08X}",
        f"UART base {_hex(base)} in the image, 0x{u.base:08X} in the board file",
    )
    irq = facts.get("uart_rx_irq")
    rep.expect(
        irq == u.rx_irq,
        f"UART IRQ {u.rx_irq}" if u.rx_irq is not None else "UART polled (no IRQ)",
        f"UART IRQ {irq} in the image, {u.rx_irq} in the board file",
    )
    baud = facts.get("uart_baud")
    rep.expect(baud == u.baud, f"UART {u.baud} baud", f"UART baud {baud} in the image, {u.baud} in the board file")
    clocks = [("", facts.get("uart_clock_hz"), facts.get("uart_divisor"))]
    if "uart_reset_clock_hz" in facts:  # the divisor of the clock setup's fallback
        clocks.append((" at the reset clock", facts["uart_reset_clock_hz"], facts.get("uart_reset_divisor")))
    if clocks[0][1] != u.clock_hz:
        rep.expect(False, "", f"UART clock {clocks[0][1]} Hz in the image, {u.clock_hz} Hz in the board file")
        return
    for label, clock, divisor in clocks:
        if clock is None or divisor is None:
            rep.expect(False, "", f"the image records no UART divisor{label}")
            continue
        actual = uart_baud(u.driver, clock, divisor)
        err = abs(actual - u.baud) / u.baud
        rep.expect(
            err <= BAUD_TOLERANCE,
            f"UART divisor {divisor}{label}: {actual:,.0f} baud ({100 * err:.2f} % off)",
            f"UART divisor {divisor}{label} gives {actual:,.0f} baud at {clock:,} Hz, {100 * err:.1f} % off {u.baud}",
        )


def _check_clock(facts: dict[str, int], board: Board, rep: ImageCheck) -> None:
    """The clock the image sets up is the board file's; the UART then has a divisor for both clocks."""
    c = board.clock
    if c is None:
        rep.expect("clock_hz" not in facts, "no clock setup (reset clocks)",
                   "the image sets up a clock the board file has no [clock] table for")  # fmt: skip
        return
    got = facts.get("clock_hz")
    rep.expect(got == board.clock_hz, f"clock setup to {board.clock_hz:,} Hz",
               f"the image sets the clock to {_hz(got)}, the board file says {board.clock_hz:,} Hz")  # fmt: skip
    rep.expect(facts.get("clock_full_speed") == int(c.full_speed), f"full_speed = {str(c.full_speed).lower()}",
               f"the image's full-speed switch is {facts.get('clock_full_speed')}, the board file's "
               f"{str(c.full_speed).lower()}")  # fmt: skip
    rep.expect(facts.get("clock_reset_hz") == c.reset_hz and "uart_reset_divisor" in facts,
               f"fallback to the {c.reset_hz:,} Hz reset clock, with its own UART divisor",
               f"the image's fallback clock is {_hz(facts.get('clock_reset_hz'))}, the board file's {c.reset_hz:,} Hz")  # fmt: skip
    if "clock_flash_latency" in facts:
        rep.expect(facts["clock_flash_latency"] == c.flash_latency, f"{c.flash_latency} flash wait states",
                   f"the image sets {facts['clock_flash_latency']} flash wait states, the board file "
                   f"{c.flash_latency}")  # fmt: skip


def _hz(v: int | None) -> str:
    return "none" if v is None else f"{v:,} Hz"


def _check_boot2(elf: Elf, board: Board, rep: ImageCheck) -> None:
    boot2 = elf.read_addr(board.flash_origin, BOOT2_BYTES)
    if not rep.expect(
        boot2 is not None and board.boot2_bytes == BOOT2_BYTES,
        "boot2 stage present",
        f"no {BOOT2_BYTES}-byte boot2 stage at 0x{board.flash_origin:08X}: the boot ROM will not start the image",
    ):
        return
    want, have = crc32_mpeg2(boot2[:252]), struct.unpack_from("<I", boot2, 252)[0]
    rep.expect(
        want == have,
        f"boot2 CRC-32 0x{have:08X}",
        f"boot2 CRC-32 is 0x{want:08X} but its last 4 bytes say 0x{have:08X}: the boot ROM will refuse it",
    )


def _hex(v: int | None) -> str:
    return "none" if v is None else f"0x{v:08X}"


def require_good_image(elf_path: str | Path, board: Board) -> ImageCheck:
    """`check_image`, raising the first problem as one line (ImageCheckError)."""
    rep = check_image(elf_path, board)
    if not rep.ok:
        more = f" (and {len(rep.problems) - 1} more)" if len(rep.problems) > 1 else ""
        raise ImageCheckError(f"{Path(elf_path).name} is not fit for {board.name}: {rep.problems[0]}{more}")
    return rep
