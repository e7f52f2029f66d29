"""The RP2040 boot2 stage mcuflow ships (firmware/boot2/generic_03h.S), executed instruction by
instruction from a built rpi-pico image: a small Thumb interpreter plays the boot ROM (256 bytes
copied to 0x20041F00, entered with lr = 0) and records every store, which must be the XIP SSI
setup for standard-SPI 03h reads (RP2040 datasheet 4.10.13) and the jump through the image's own
vector table. No RP2040 emulator exists here; this runs the bytes that would reach the chip."""

from __future__ import annotations

import struct

import pytest
from conftest import require_tools
from firmware_helpers import copy_fake_export

from mcuflow.build import build
from mcuflow.imagecheck import Elf, crc32_mpeg2

pytestmark = pytest.mark.firmware

LOAD = 0x20041F00
SSI = 0x18000000


class Thumb:
    """The Thumb-1 subset a boot2 stage uses; anything else fails the test (extend it, knowingly)."""

    def __init__(self, code: bytes, flash: bytes, lr: int):
        self.mem = {LOAD + i: b for i, b in enumerate(code)}
        self.flash = flash
        self.r = [0] * 16
        self.r[13], self.r[14], self.r[15] = 0x20042000, lr, LOAD
        self.stores: list[tuple[int, int]] = []
        self.z = False

    def read32(self, a: int) -> int:
        if 0x10000000 <= a < 0x10000000 + len(self.flash):
            return struct.unpack_from("<I", self.flash, a - 0x10000000)[0]
        return sum(self.mem.get(a + i, 0) << (8 * i) for i in range(4))

    def run(self, limit: int = 200) -> int:
        """Runs until a `bx` leaves the stage; returns where it went."""
        for _ in range(limit):
            pc = self.r[15]
            op = self.mem[pc] | self.mem[pc + 1] << 8
            self.r[15] = pc + 2
            if op == 0xB500:  # push {lr}
                self.r[13] -= 4
                self.mem.update({self.r[13] + i: (self.r[14] >> 8 * i) & 255 for i in range(4)})
            elif op == 0xBC01:  # pop {r0}
                self.r[0] = self.read32(self.r[13])
                self.r[13] += 4
            elif op >> 11 == 0b01001:  # ldr rt, [pc, #imm8 * 4]
                self.r[(op >> 8) & 7] = self.read32(((pc + 4) & ~3) + (op & 0xFF) * 4)
            elif op >> 11 == 0b00100:  # movs rd, #imm8
                self.r[(op >> 8) & 7] = op & 0xFF
            elif op >> 11 == 0b01100:  # str rt, [rn, #imm5 * 4]
                self.stores.append((self.r[(op >> 3) & 7] + ((op >> 6) & 31) * 4, self.r[op & 7]))
            elif op >> 11 == 0b00101:  # cmp rn, #imm8
                self.z = self.r[(op >> 8) & 7] == op & 0xFF
            elif op >> 8 == 0xD0:  # beq
                if self.z:
                    self.r[15] = pc + 4 + (((op & 0xFF) ^ 0x80) - 0x80) * 2
            elif op & 0xFF87 == 0x4700:  # bx rm
                return self.r[(op >> 3) & 15]
            elif op >> 11 == 0b11001:  # ldmia rn, {list} (base in the list: no writeback)
                base = self.r[(op >> 8) & 7]
                for i, reg in enumerate(k for k in range(8) if op >> k & 1):
                    self.r[reg] = self.read32(base + 4 * i)
            elif op == 0xF380 and self.mem[pc + 2] | self.mem[pc + 3] << 8 == 0x8808:  # msr msp, r0
                self.r[15] = pc + 4
                self.stores.append(("msp", self.r[0]))
            else:
                raise AssertionError(f"instruction 0x{op:04x} at 0x{pc:08x} is outside the interpreter's subset")
        raise AssertionError("the boot2 stage did not leave within the step limit")


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> bytes:
    require_tools("arm-none-eabi-gcc")
    built = build(copy_fake_export(tmp_path_factory.mktemp("b2") / "export"), "rpi-pico")
    return built.elf.with_suffix(".bin").read_bytes(), Elf.read(built.elf)


def test_boot2_is_252_bytes_and_its_crc(image):
    raw, elf = image
    assert elf.sections[".boot2"].addr == 0x10000000 and elf.sections[".boot2"].size == 256
    assert struct.unpack_from("<I", raw, 252)[0] == crc32_mpeg2(raw[:252])


def test_boot2_sets_up_xip_then_enters_the_image(image):
    raw, elf = image
    cpu = Thumb(raw[:256], raw, lr=0)  # the boot ROM enters it with lr = 0
    target = cpu.run()
    sp, reset = struct.unpack_from("<II", raw, 0x100)
    assert cpu.stores == [
        (SSI + 0x08, 0),  # SSIENR: off while configuring
        (SSI + 0x14, 4),  # BAUDR: SCK = clk_sys / 4
        (SSI + 0x00, 0x001F0300),  # CTRLR0: standard SPI, 32-bit frames, EEPROM-read mode
        (SSI + 0xF4, 0x03000218),  # SPI_CTRLR0: command 03h, 8-bit command, 24-bit address, no wait
        (SSI + 0x04, 0),  # CTRLR1: NDF = 0
        (SSI + 0x08, 1),  # SSIENR: on, XIP live
        (0xE000ED08, 0x10000100),  # VTOR: the image's vector table
        ("msp", sp),
    ]
    assert target == reset and reset == elf.entry | 1
    assert sp == 0x20040000


def test_boot2_returns_when_called(image):
    raw, _ = image
    cpu = Thumb(raw[:256], raw, lr=0x10001235)  # called as a function: back to the caller
    assert cpu.run() == 0x10001235
    assert [a for a, _ in cpu.stores] == [SSI + 0x08, SSI + 0x14, SSI, SSI + 0xF4, SSI + 0x04, SSI + 0x08]
