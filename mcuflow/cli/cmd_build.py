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
@click.option(
    "--replay-inputs",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A .npy of int8 (quantised) inputs, (N, input_len), linked into flash as the input table of sensor "
    "replay: a self-test on hardware, the device runs them as its sensor's when asked (REPLAY).",
)
@click.option(
    "--no-fragments",
    "no_fragments",
    is_flag=True,
    default=False,
    help="Leave fragmented requests (INFER_PART / INFER_COMMIT) out of the protocol firmware, about 670 B of "
    "flash: for devices fed by their sensor (sensor replay) or by a clean link. HELLO says so (capability bit "
    "11 clear); the host then sends whole frames, and refuses --fragment with a part size.",
)
def build_cmd(export_dir: Path, board: str, app: str, replay_inputs: Path | None, no_fragments: bool) -> None:
    """Build firmware for BOARD from the generated C library in EXPORT_DIR.

    Writes EXPORT_DIR/build/<board>/firmware.{elf,bin,hex} and EXPORT_DIR/build.json.
    """
    from mcuflow.build import build, check_export_dir, load_replay_inputs

    inputs = None
    if replay_inputs is not None:
        from mcuflow.manifest import ExportManifest

        check_export_dir(export_dir)
        inputs = load_replay_inputs(replay_inputs, ExportManifest.read(export_dir).input_len)
    result = build(export_dir, board, app=app, replay_inputs=inputs, fragments=not no_fragments)
    r = result.report
    click.echo(result.summary())
    comps = ", ".join(f"{k} {v['flash']:,}" for k, v in sorted(r["components"].items(), key=lambda kv: -kv[1]["flash"]))
    click.echo(f"  flash by part: {comps}")
    click.echo(f"  wrote {result.out_dir}/firmware.elf (.bin, .hex) and {Path(export_dir) / 'build.json'}")
