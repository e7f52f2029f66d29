"""``mcuflow selftest``: bring-up check of a board with the selftest firmware (mcuflow.bringup)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mcuflow.cli.main import cli


@cli.command("selftest")
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="Board name (see `mcuflow boards`) or path to a board .toml file.")
@click.option("--port", "-p", default=None, help="The board's serial port (hardware), e.g. /dev/ttyACM0.")
@click.option("--emulate", is_flag=True, help="A hardware board: run its selftest image on its stand-in QEMU machine.")
@click.option("--flash", "do_flash", is_flag=True, help="With --port: flash the selftest firmware first.")
@click.option("--probe", default=None, help="With --flash: the debug probe's id.")
@click.option("--no-build", is_flag=True, help="Use the selftest firmware already in EXPORT_DIR/build/<board>.")
@click.option("--runs", type=click.IntRange(1, 100_000), default=10, show_default=True, help="Runs per count.")
def selftest_cmd(export_dir, board, port, emulate, do_flash, probe, no_build, runs) -> None:
    """Run the selftest firmware of EXPORT_DIR on BOARD and check it against the numpy reference.

    Builds the selftest app (replacing EXPORT_DIR/build/<board>), runs it under QEMU for a QEMU
    board (or --emulate), or talks to a flashed board on --port; prints the banner, the clock,
    the input table's parity, and instructions (QEMU) or cycles (hardware) per inference and per
    layer. Exits with status 3 when an answer differs from the reference or the model hash does not
    match.

    Example: mcuflow selftest out/export --board nucleo-f446re --port /dev/ttyACM0 --flash
    """
    from mcuflow.bringup import run_selftest

    report = run_selftest(
        export_dir,
        board,
        port=port,
        emulate=emulate,
        runs=runs,
        build=not no_build,
        flash=do_flash,
        probe=probe,
        log=lambda m: click.echo(m, err=True),
    )
    for line in report.lines():
        click.echo(line)
    if not report.passed:
        click.echo("mcuflow: error: the selftest did not pass", err=True)
        sys.exit(3)
