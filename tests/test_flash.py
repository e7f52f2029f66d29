"""`mcuflow flash` with pyocd's Python API and openocd's command line replaced by fakes that record
the calls: the probe, the target, the image, the chip-ID check, verify and reset; and each failure
(no probe, several probes, a probe id that is not there, the wrong chip, a bad write) in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_tools
from firmware_helpers import copy_fake_export

from mcuflow.boards import load_board
from mcuflow.build import build
from mcuflow.cli import main
from mcuflow.errors import ToolchainError
from mcuflow.flash import Openocd, Pyocd, flash
from mcuflow.imagecheck import Elf


class FakeProbe:
    def __init__(self, uid: str):
        self.unique_id, self.description = uid, f"STM32 STLink {uid[-4:]}"


class FakeTarget:
    def __init__(self, world):
        self.world = world

    def read32(self, addr: int) -> int:
        self.world.calls.append(("read32", addr))
        return self.world.chip_id

    def read_memory_block8(self, addr: int, n: int) -> list[int]:
        self.world.calls.append(("read", addr, n))
        return [self.world.memory.get(addr + i, 0xFF) for i in range(n)]

    def reset(self) -> None:
        self.world.calls.append(("reset",))


class FakePyocd:
    """pyocd.core.helpers.ConnectHelper, pyocd.core.session.Session and FileProgrammer, as far as
    mcuflow.flash uses them, over a fake chip with a flash array."""

    def __init__(self, probes=("0670FF495051",), chip_id=0x421, corrupt: int | None = None):
        self.probes, self.chip_id, self.corrupt = [FakeProbe(p) for p in probes], chip_id, corrupt
        self.calls: list[tuple] = []
        self.memory: dict[int, int] = {}
        world = self

        class ConnectHelper:
            @staticmethod
            def get_all_connected_probes(blocking=True, unique_id=None, print_wait_message=True):
                assert blocking is False  # never wait for a probe that is not there
                return list(world.probes)

        class Session:
            def __init__(self, probe, auto_open=True, options=None, **kwargs):
                world.calls.append(("session", probe.unique_id, kwargs.get("target_override")))
                self.target = FakeTarget(world)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                world.calls.append(("close",))

        class FileProgrammer:
            def __init__(self, session):
                self.session = session

            def program(self, path, file_format=None, **kw):
                world.calls.append(("program", path, file_format))
                for addr, data in Elf.read(path).load_segments():
                    for i, b in enumerate(data):
                        world.memory[addr + i] = b
                if world.corrupt is not None:
                    world.memory[world.corrupt] ^= 0x10

        self.ConnectHelper, self.Session, self.FileProgrammer = ConnectHelper, Session, FileProgrammer


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    require_tools("arm-none-eabi-gcc")
    export = copy_fake_export(tmp_path_factory.mktemp("fl") / "export")
    for board in ("nucleo-f446re", "rpi-pico"):
        build(export, board)
    return export


def test_pyocd_checks_the_chip_programs_verifies_and_resets(built):
    fake = FakePyocd()
    steps = flash(built, "nucleo-f446re", tool=Pyocd(api=fake))
    elf = built / "build" / "nucleo-f446re" / "firmware.elf"
    segments = Elf.read(elf).load_segments()
    assert fake.calls[0] == ("session", "0670FF495051", "stm32f446retx")  # the board file's pyocd target
    assert fake.calls[1] == ("read32", 0xE0042000)  # DBGMCU_IDCODE, before anything is written
    assert fake.calls[2] == ("program", str(elf), "elf")
    assert fake.calls[3 : 3 + len(segments)] == [("read", a, len(d)) for a, d in segments]  # verify
    assert fake.calls[3 + len(segments) :] == [("reset",), ("close",)]
    assert steps == ["pyocd", "target=stm32f446retx", "probe=0670FF495051", f"program={elf}", "verify", "reset"]
    fake = FakePyocd()
    flash(built, "nucleo-f446re", tool=Pyocd(api=fake), verify=False, reset=False)
    assert [c[0] for c in fake.calls] == ["session", "read32", "program", "close"]


@pytest.mark.parametrize(
    "probes,asked,message",
    [
        ((), None, "no debug probe found by pyocd: is the board plugged in?"),
        (("0670FF495051", "066BFF555355"), None,
         "2 debug probes found by pyocd (0670FF495051, 066BFF555355): choose one with --probe"),
        (("0670FF495051",), "ABC123", "no debug probe with id 'ABC123' found by pyocd (found: 0670FF495051): is the board plugged in?"),
    ],
)  # fmt: skip
def test_pyocd_probe_problems_are_one_line(built, probes, asked, message):
    fake = FakePyocd(probes=probes)
    with pytest.raises(ToolchainError) as err:
        flash(built, "nucleo-f446re", probe=asked, tool=Pyocd(api=fake))
    assert str(err.value) == message
    assert not [c for c in fake.calls if c[0] == "program"]


def test_pyocd_picks_the_probe_asked_for(built):
    fake = FakePyocd(probes=("0670FF495051", "066BFF555355"))
    flash(built, "nucleo-f446re", probe="066B", tool=Pyocd(api=fake))
    assert fake.calls[0] == ("session", "066BFF555355", "stm32f446retx")


def test_pyocd_refuses_the_wrong_chip_before_writing(built):
    fake = FakePyocd(chip_id=0x10006433)  # an F401 (DEV_ID 0x433, REV_ID above) under an F446 image
    with pytest.raises(ToolchainError) as err:
        flash(built, "nucleo-f446re", tool=Pyocd(api=fake))
    assert str(err.value) == (
        "the chip on the probe is not nucleo-f446re's STM32F446: ID register 0xE0042000 reads 0x433 (mask 0xFFF), "
        "expected 0x421"
    )
    assert [c[0] for c in fake.calls] == ["session", "read32", "close"]


def test_pyocd_verify_finds_a_bad_byte(built):
    fake = FakePyocd(corrupt=0x08000123)
    with pytest.raises(ToolchainError, match="^verify failed: flash at 0x08000123 holds 0x"):
        flash(built, "nucleo-f446re", tool=Pyocd(api=fake))
    assert ("reset",) not in fake.calls  # a bad image is not started


class FakeOpenocd:
    """openocd's command line: records each argv, answers with a scripted (status, output)."""

    def __init__(self, *answers: tuple[int, str]):
        self.answers, self.calls = list(answers), []

    def __call__(self, cmd: list[str], timeout: float) -> tuple[int, str]:
        self.calls.append(cmd)
        return self.answers.pop(0) if self.answers else (0, "")


def usb(tmp_path: Path, *probes: tuple[str, str]) -> Path:
    """A sysfs /sys/bus/usb/devices with these (product, serial) devices."""
    root = tmp_path / "usb"
    root.mkdir()
    for i, (product, serial) in enumerate(probes):
        d = root / f"1-{i + 1}"
        d.mkdir()
        (d / "product").write_text(product + "\n")
        (d / "serial").write_text(serial + "\n")
    return root


@pytest.fixture
def openocd_on_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "openocd"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return str(exe)


def test_openocd_checks_the_chip_then_programs_verifies_and_resets(built, tmp_path, openocd_on_path):
    fake = FakeOpenocd()
    root = usb(tmp_path, ("Debugprobe on Pico (CMSIS-DAP)", "E6614103E7"), ("USB Keyboard", "x"))
    cmd = flash(built, "rpi-pico", tool=Openocd(run=fake, usb_root=root))
    elf = built / "build" / "rpi-pico" / "firmware.elf"
    base = [
        openocd_on_path,
        "-f",
        "interface/cmsis-dap.cfg",
        "-f",
        "target/rp2040.cfg",
        "-c",
        "adapter serial E6614103E7",
    ]
    check, program = fake.calls
    assert check[: len(base)] == base and check[len(base) :][:2] == ["-c", "init"]
    assert "read_memory 0x40000000 32 1" in check[-3] and "0xFFFFFFF) != 0x2927" in check[-3]
    assert check[-2:] == ["-c", "shutdown"]
    assert program == cmd == base + ["-c", f"program {elf} verify reset exit"]


def test_openocd_failures_are_one_line(built, tmp_path, openocd_on_path):
    root = usb(tmp_path, ("CMSIS-DAP v2", "A1"), ("MCU-Link CMSIS-DAP", "B2"))
    with pytest.raises(ToolchainError) as err:
        flash(built, "rpi-pico", tool=Openocd(run=FakeOpenocd(), usb_root=root))
    assert str(err.value) == "2 debug probes found by openocd (A1, B2): choose one with --probe"
    empty = tmp_path / "none"
    empty.mkdir()
    no_probe = FakeOpenocd((1, "Open On-Chip Debugger 0.12.0\nError: unable to find a matching CMSIS-DAP device\n"))
    with pytest.raises(ToolchainError) as err:
        flash(built, "rpi-pico", tool=Openocd(run=no_probe, usb_root=empty))
    assert str(err.value) == "no debug probe found by openocd: is the board plugged in?"
    wrong = FakeOpenocd((1, "Info : rp2040.core0: hardware has 4 breakpoints\nmcuflow: wrong target 0x10003927\n"))
    with pytest.raises(ToolchainError) as err:  # the revision (bits 31:28) may differ, the part may not
        flash(built, "rpi-pico", tool=Openocd(run=wrong, usb_root=empty))
    assert str(err.value) == (
        "the chip on the probe is not rpi-pico's RP2040: ID register 0x40000000 reads 0x3927 (mask 0xFFFFFFF), expected 0x2927"
    )
    assert len(wrong.calls) == 1  # nothing programmed
    bad = FakeOpenocd((0, ""), (1, "** Programming Started **\nError: checksum mismatch - attempting binary compare\n"
                                   "** Verify Failed **\n"))  # fmt: skip
    with pytest.raises(ToolchainError) as err:
        flash(built, "rpi-pico", tool=Openocd(run=bad, usb_root=empty))
    assert str(err.value) == "openocd failed: Error: checksum mismatch - attempting binary compare"


def test_flash_command_checks_the_image_first(built, tmp_path, capsys):
    """`mcuflow flash` refuses an image that does not fit the board before any tool runs."""
    export = tmp_path / "export"
    elf = export / "build" / "nucleo-f446re" / "firmware.elf"
    elf.parent.mkdir(parents=True)
    elf.write_bytes((built / "build" / "rpi-pico" / "firmware.elf").read_bytes())  # the Pico's image
    assert main(["flash", str(export), "--board", "nucleo-f446re"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "mcuflow: error: firmware.elf is not fit for nucleo-f446re: the vector table is at 0x10000100"
    )
    assert "\n" not in err
    assert load_board("nucleo-f446re").flasher.chip_id.value == 0x421
