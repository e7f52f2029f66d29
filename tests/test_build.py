"""Firmware builds with arm-none-eabi-gcc for every board, size reports, and boards that are too small."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools
from firmware_helpers import ALL_BOARDS, copy_fake_export

from mcuflow import paths
from mcuflow.boards import load_board
from mcuflow.build import build
from mcuflow.cli import main
from mcuflow.errors import ConfigError, ToolchainError

pytestmark = pytest.mark.firmware


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    require_tools("arm-none-eabi-gcc")
    return copy_fake_export(tmp_path_factory.mktemp("fw") / "export")


def tiny_board(tmp_path: Path, name: str, **memory) -> Path:
    """A copy of the AN386 board with a deliberately small memory map."""
    text = (paths.boards_dir() / "qemu-mps2-an386.toml").read_text().replace('"qemu-mps2-an386"', f'"{name}"', 1)
    for key, value in memory.items():
        text = text.replace(f"{key} = 0x400000", f"{key} = {value}")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("board", ALL_BOARDS)
def test_protocol_firmware_builds_for_every_board(export_dir, board):
    result = build(export_dir, board)
    out = export_dir / "build" / board
    assert result.out_dir == out
    for name in ("firmware.elf", "firmware.bin", "firmware.hex", "build.json", "linker.ld"):
        assert (out / name).is_file(), name
    report = json.loads((out / "build.json").read_text())
    assert report == json.loads((export_dir / "build.json").read_text())  # latest build mirrored in DIR
    sec = report["sections"]
    assert report["flash_bytes"] == sum(
        sec.get(s, 0) for s in (".boot2", ".vectors", ".text", ".rodata", ".ARM.exidx", ".data")
    )
    assert report["ram_bytes"] == sec.get(".data", 0) + sec.get(".bss", 0)
    # The raw image spans the flash sections exactly (only alignment padding between them).
    assert 0 <= (out / "firmware.bin").stat().st_size - report["flash_bytes"] < 16
    assert report["budget"]["flash_bytes"] >= report["flash_bytes"]
    # The weights are the model's read-only data, the biggest single part of the image.
    comps = report["components"]
    assert comps["model"]["rodata"] >= 2200  # 1,600 + 400 int8 weights + 50 int32 biases
    assert {"core", "uart", "counter", "protocol"} <= set(comps)  # app and link, optimised together (LTO)
    assert sum(c["flash"] for c in comps.values()) == pytest.approx(report["flash_bytes"], abs=64)
    assert report["flash_bytes"] < 12 * 1024
    # The image boots: its vector table (after any boot2 slot) holds the top of RAM as initial
    # stack pointer and a Thumb reset address inside the image.
    b = load_board(board)
    image = (out / "firmware.bin").read_bytes()
    sp, reset = struct.unpack_from("<II", image, b.boot2_bytes)
    assert sp == b.ram_origin + b.ram_bytes
    assert reset & 1 and b.flash_origin <= reset - 1 < b.flash_origin + len(image)


def test_selftest_builds_warning_free_for_every_port(export_dir):
    # -Werror on our own sources: every UART driver, chip and counter file compiles cleanly.
    seen = set()
    for board in ALL_BOARDS:
        b = load_board(board)
        key = (b.uart.driver, b.chip, b.counter.kind, b.cpu)
        if key in seen:
            continue
        seen.add(key)
        result = build(export_dir, b, app="selftest", extra_cflags=("-Werror",))
        assert result.report["app"] == "selftest"
    assert len({k[0] for k in seen}) == 5  # cmsdk, stm32 v1, stm32 v2, nRF52 UARTE, PL011


def test_model_too_big_fails_before_compiling(tmp_path):
    """The manifest's constants are checked against the board before anything compiles."""
    import mcuflow
    from mcuflow.export import export
    from mcuflow.nn import build_model, paper_config

    ckpt = mcuflow.save(build_model(paper_config()), tmp_path / "m.pt")
    res = export(ckpt, tmp_path / "export", calibration=np.random.default_rng(0).random((8, 784)))
    need = res.manifest.constant_bytes  # 2,000 weights, 9 B per row for 50 rows, a 512 B exit table
    assert need == 2000 + 9 * 50 + 512
    board = tiny_board(tmp_path, "tiny-flash", flash_bytes=1024)
    with pytest.raises(
        ConfigError, match=rf"does not fit tiny-flash: its weights and constants alone take {need:,} bytes.*1,024"
    ):
        build(res.directory, board)
    assert not (res.directory / "build" / "tiny-flash").exists()


def test_link_time_overflow_is_caught(tmp_path):
    require_tools("arm-none-eabi-gcc")
    export = copy_fake_export(tmp_path / "export")  # a hand-made library, no export.json: the linker checks
    board = tiny_board(tmp_path, "tiny-link", flash_bytes=3072)
    with pytest.raises(ConfigError, match=r"does not fit tiny-link's 3,072 bytes of flash by \d"):
        build(export, board, app="selftest")
    board = tiny_board(tmp_path, "tiny-ram", ram_bytes=2560)  # 2 KiB stack + ~0.8 KiB of data
    with pytest.raises(ConfigError, match=r"does not fit tiny-ram's RAM.*2,048-byte stack exceed 2,560 bytes"):
        build(export, board, app="selftest")
    leftovers = [p.name for p in (export / "build").iterdir()]
    assert leftovers == [], leftovers  # atomic: no partial output
    assert not (export / "build.json").exists()


def test_rebuild_replaces_the_previous_output(export_dir):
    first = build(export_dir, "qemu-mps2-an385", app="selftest")
    marker = first.out_dir / "stale.txt"
    marker.write_text("old")
    second = build(export_dir, "qemu-mps2-an385", app="selftest")
    assert second.out_dir == first.out_dir and not marker.exists()
    assert not [p for p in (export_dir / "build").iterdir() if p.name.startswith(".")]


def test_compile_error_and_bad_export(tmp_path):
    require_tools("arm-none-eabi-gcc")
    export = copy_fake_export(tmp_path / "export")
    (export / "broken.c").write_text("int broken(void) { return undeclared_thing; }\n")
    with pytest.raises(ToolchainError, match="compiling .*broken.c failed: .*undeclared_thing"):
        build(export, "qemu-mps2-an386")
    with pytest.raises(ConfigError, match="not an mcuflow export"):
        build(tmp_path, "qemu-mps2-an386")
    with pytest.raises(ConfigError, match="export directory not found"):
        build(tmp_path / "nope", "qemu-mps2-an386")
    with pytest.raises(ConfigError, match="unknown app"):
        build(export, "qemu-mps2-an386", app="other")


def test_build_cli(export_dir, capsys):
    assert main(["build", str(export_dir), "--board", "qemu-mps2-an386", "--app", "selftest"]) == 0
    out = capsys.readouterr().out
    assert "qemu-mps2-an386: flash" in out and "/ 4,194,304 bytes" in out and "flash by part: model" in out
    assert main(["build", str(export_dir), "--board", "no-such-board"]) == 1
    assert "mcuflow: error: unknown board 'no-such-board'" in capsys.readouterr().err
