"""``mcuflow flash``: write a built firmware to a board through pyocd or openocd."""

from __future__ import annotations

from pathlib import Path

import click

from mcuflow.cli.main import cli


@cli.command("flash")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="Board name (see `mcuflow boards`) or path to a board .toml file.")
@click.option("--probe", default=None, help="Debug probe id (pyocd -u / openocd adapter serial).")
def flash_cmd(export_dir: Path, board: str, probe: str | None) -> None:
    """Flash EXPORT_DIR/build/<board>/firmware.elf (run `mcuflow build` first)."""
    from mcuflow.flash import flash

    cmd = flash(export_dir, board, probe=probe)
    click.echo(f"flashed with: {' '.join(cmd)}")
