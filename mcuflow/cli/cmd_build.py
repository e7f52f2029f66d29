"""``mcuflow build``: compile an export directory and the firmware for one board."""

from __future__ import annotations

from pathlib import Path

import click

from mcuflow.cli.main import cli


@cli.command("build")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="Board name (see `mcuflow boards`) or path to a board .toml file.")
@click.option(
    "--app",
    type=click.Choice(["protocol", "selftest"]),
    default="protocol",
    show_default=True,
    help="protocol: serve the serial protocol; selftest: banner, one inference, echo (bring-up checks).",
)
def build_cmd(export_dir: Path, board: str, app: str) -> None:
    """Build firmware for BOARD from the generated C library in EXPORT_DIR.

    Writes EXPORT_DIR/build/<board>/firmware.{elf,bin,hex} and EXPORT_DIR/build.json.
    """
    from mcuflow.build import build

    result = build(export_dir, board, app=app)
    r = result.report
    click.echo(result.summary())
    comps = ", ".join(f"{k} {v['flash']:,}" for k, v in sorted(r["components"].items(), key=lambda kv: -kv[1]["flash"]))
    click.echo(f"  flash by part: {comps}")
    click.echo(f"  wrote {result.out_dir}/firmware.elf (.bin, .hex) and {Path(export_dir) / 'build.json'}")
