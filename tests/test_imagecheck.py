"""Static image checks (mcuflow.imagecheck): every board's image passes; images broken the ways a
first flash goes wrong (stack outside RAM, UART at the wrong base, a bad boot2 CRC, a vector table
off its place) fail with one clear line, and `mcuflow build` refuses them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import require_tools
from firmware_helpers import ALL_BOARDS, copy_fake_export

from mcuflow import build as build_mod
from mcuflow import paths
from mcuflow.boards import load_board, load_board_file
from mcuflow.build import boot2_image, build
from mcuflow.cli import main
from mcuflow.errors import ImageCheckError
from mcuflow.imagecheck import Elf, check_image, crc32_mpeg2, require_good_image, uart_baud

pytestmark = pytest.mark.firmware


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    require_tools("arm-none-eabi-gcc")
    return copy_fake_export(tmp_path_factory.mktemp("img") / "export")


def variant(tmp_path: Path, board: str, old: str, new: str) -> Path:
    """The board file with one line changed, under the same name (an image built for a board
    file that disagrees with the real one)."""
    text = (paths.boards_dir() / f"{board}.toml").read_text()
    assert old in text
    path = tmp_path / board / f"{board}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace(old, new, 1))
    return path


def test_crc32_mpeg2_and_the_boot2_slot():
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogue check value of CRC-32/MPEG-2
    slot = boot2_image(b"\x00\xb5")
    assert len(slot) == 256 and slot[2:252] == bytes(250)
    assert struct.unpack_from("<I", slot, 252)[0] == crc32_mpeg2(slot[:252])


def test_uart_baud_follows_each_manual():
    assert uart_baud("stm32-usart-v1", 16_000_000, 139) == pytest.approx(115_108, abs=1)
    assert uart_baud("pl011", 12_000_000, 417) == pytest.approx(115_108, abs=1)  # IBRD 6, FBRD 33
    assert uart_baud("nrf52-uarte", 0, 0x01D7E000) == pytest.approx(115_203, abs=1)


@pytest.mark.slow
@pytest.mark.parametrize("board", ALL_BOARDS)
def test_every_board_image_passes(export_dir, board):
    result = build(export_dir, board)  # build runs the checks itself
    rep = check_image(result.elf, load_board(board))
    assert rep.ok, rep.problems
    assert result.report["image_checks"] == rep.passed
    text = " | ".join(rep.passed)
    assert "initial stack pointer" in text and "reset vector" in text and "UART divisor" in text
    if load_board(board).boot2:
        assert "boot2 CRC-32" in text


def test_stack_outside_ram_is_refused(export_dir, tmp_path):
    # Linked for RAM at 0x30000000 (the board file was wrong): the core would start with its
    # stack in nothing.
    bad = build(
        export_dir,
        load_board_file(variant(tmp_path, "nucleo-f446re", "ram_origin = 0x20000000", "ram_origin = 0x30000000")),
    )
    with pytest.raises(ImageCheckError) as err:
        require_good_image(bad.elf, load_board("nucleo-f446re"))
    msg = str(err.value)
    assert msg.startswith("firmware.elf is not fit for nucleo-f446re: initial stack pointer 0x30020000 is outside RAM")
    assert "\n" not in msg
    assert "section .bss" in " ".join(check_image(bad.elf, load_board("nucleo-f446re")).problems)


def test_wrong_uart_base_is_refused(export_dir, tmp_path):
    bad = build(
        export_dir, load_board_file(variant(tmp_path, "nucleo-f401re", "base = 0x40004400", "base = 0x40004800"))
    )
    rep = check_image(bad.elf, load_board("nucleo-f401re"))
    assert rep.problems == ["UART base 0x40004800 in the image, 0x40004400 in the board file"]


def test_uart_divisor_must_give_the_baud(export_dir, tmp_path):
    # 2 Mbaud from the F446's 45 MHz APB1: BRR 23 is the nearest and 2.2 % off, more than a UART
    # receiver takes; at the 16 MHz fallback clock BRR 8 is exact.
    board = load_board_file(variant(tmp_path, "nucleo-f446re", "baud = 115200", "baud = 2000000"))
    rep = check_image(_build_unchecked(export_dir, board), board)
    assert rep.problems == ["UART divisor 23 gives 1,956,522 baud at 45,000,000 Hz, 2.2 % off 2000000"]
    assert "UART divisor 8 at the reset clock: 2,000,000 baud (0.00 % off)" in rep.passed


def _build_unchecked(export_dir: Path, board) -> Path:
    """Link without the build's own check (which would refuse this image), to check it here."""
    out = export_dir.parent / f"unchecked-{board.name}"
    out.mkdir(exist_ok=True)
    fw = paths.firmware_dir()
    res = build_mod.build_app(board, build_mod.app_sources("protocol"), [export_dir, fw / "app", fw / "link"], out,
                              model_sources=sorted(export_dir.glob("*.c")))  # fmt: skip
    return res.elf


def test_bad_boot2_crc_and_a_moved_vector_table(export_dir, tmp_path):
    good = build(export_dir, "rpi-pico").elf
    elf = Elf.read(good)
    boot2 = elf.sections[".boot2"]
    data = bytearray(elf.data)
    data[boot2.offset + 4] ^= 0x01  # one bit of the code: the boot ROM's CRC no longer matches
    broken = tmp_path / "firmware.elf"
    broken.write_bytes(bytes(data))
    rep = check_image(broken, load_board("rpi-pico"))
    assert len(rep.problems) == 1 and rep.problems[0].startswith("boot2 CRC-32 is 0x")
    assert rep.problems[0].endswith("the boot ROM will refuse it")
    # The same image checked against a board without boot2: its vector table is 256 bytes late.
    rep = check_image(good, load_board("nucleo-f401re"))
    assert (
        rep.problems[0]
        == "the vector table is at 0x10000100, not at the start of flash (0x08000000): the core would not start"
    )


def test_not_an_image(tmp_path):
    f = tmp_path / "x.elf"
    f.write_bytes(b"\x7fELF")
    with pytest.raises(ImageCheckError, match="is not an ELF file"):
        check_image(f, load_board("rpi-pico"))
    f.write_bytes(b"\x7fELF\x02\x01" + bytes(60))
    with pytest.raises(ImageCheckError, match="not a 32-bit little-endian ELF"):
        check_image(f, load_board("rpi-pico"))


def test_build_refuses_a_bad_image_in_one_line(export_dir, monkeypatch, capsys):
    # A template bug that puts the initial stack pointer past RAM: the build stops, says why, keeps nothing.
    render = build_mod.render_port_files

    def broken_render(board, dest):
        render(board, dest)
        ld = dest / "linker.ld"
        ld.write_text(
            ld.read_text().replace(
                "_estack = ORIGIN(RAM) + LENGTH(RAM);", "_estack = ORIGIN(RAM) + LENGTH(RAM) + 0x1000;"
            )
        )

    monkeypatch.setattr(build_mod, "render_port_files", broken_render)
    out = export_dir / "build" / "nucleo-h743zi"
    before = out.exists() and (out / "firmware.elf").read_bytes()
    code = main(["build", str(export_dir), "--board", "nucleo-h743zi"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err == [
        "mcuflow: error: firmware.elf is not fit for nucleo-h743zi: initial stack pointer 0x20021000 is outside "
        "RAM 0x20000000..0x20020000"
    ]
    assert (out.exists() and (out / "firmware.elf").read_bytes()) == before  # the last good build stands
