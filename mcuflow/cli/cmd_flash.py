"""``mcuflow flash``: write a built firmware to a board through pyocd or openocd."""

from __future__ import annotations

from pathlib import Path

import click

from mcuflow.cli.main import cli


@cli.command("flash")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="Board name (see `mcuflow boards`) or path to a board .toml file.")
@click.option("--probe", default=None, help="Debug probe id (pyocd unique id / openocd adapter serial).")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Read the image back after writing.")
def flash_cmd(export_dir: Path, board: str, probe: str | None, verify: bool) -> None:
    """Flash EXPORT_DIR/build/<board>/firmware.elf (run `mcuflow build` first).

    The image is checked against the board file first (mcuflow.imagecheck); the probe must be the
    only one or the one --probe names, and the chip the board's (its ID register); then the image is
    written, verified and the board reset.
    """
    from mcuflow.boards import load_board
    from mcuflow.flash import firmware_path, flash
    from mcuflow.imagecheck import require_good_image

    b = load_board(board)
    if not b.is_qemu:
        require_good_image(firmware_path(export_dir, b), b)
    cmd = flash(export_dir, b, probe=probe, verify=verify)
    click.echo(f"flashed with: {' '.join(cmd)}")
