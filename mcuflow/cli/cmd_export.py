"""``mcuflow export``: compile a checkpoint's head and exits to an int8 C library."""

from __future__ import annotations

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import (
    OutputPath,
    data_dir_unless_data,
    data_option,
    input_quant_kwargs,
    input_quant_options,
    link_options,
)
from mcuflow.ir.packed import FORMATS
from mcuflow.passes.quantize import DEFAULT_EXIT_THRESHOLD


@cli.command("export")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=OutputPath(directory=True), help="Export directory.")
@click.option("--board", default=None, help="Check that the head fits this board (see mcuflow boards).")
@click.option(
    "--exit-threshold",
    type=float,
    default=DEFAULT_EXIT_THRESHOLD,
    show_default=True,
    help="Exit when the exit's max-softmax confidence is at least this, in (0, 1].",
)
@click.option(
    "--format",
    "force_format",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Storage format for the head's layers (auto: the smallest per layer).",
)
@click.option(
    "--calibration-samples", type=int, default=1000, show_default=True, help="Training samples to calibrate on."
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None, help="MNIST directory (default $MCUFLOW_DATA_DIR)."
)
@data_option("calibrate on the first --calibration-samples of its training split, normalised as the checkpoint records")
@link_options
@input_quant_options
@click.option(
    "--per-channel/--per-tensor", default=True, show_default=True, help="Weight scale per output row or per tensor."
)
@click.option(
    "--small-ram",
    is_flag=True,
    help="No kernel scratch buffer: index-free layers walk their pattern (saves 2 bytes per input of the widest "
    "layer, costs about 3x the instructions).",
)
def export_cmd(
    source,
    out_dir,
    board,
    exit_threshold,
    force_format,
    calibration_samples,
    data_dir,
    data,
    per_channel,
    prune_threshold,
    prune_topk,
    link_bits,
    link_shift,
    input_scale,
    input_zero_point,
    input_range,
    small_ram,
) -> None:
    """Compile SOURCE (a checkpoint .pt or an ONNX file) into a C library in OUTPUT."""
    from mcuflow.export import export

    res = export(
        source,
        out_dir,
        board=board,
        exit_threshold=exit_threshold,
        force_format=None if force_format == "auto" else force_format,
        calibration_samples=calibration_samples,
        data_dir=data_dir_unless_data(data, data_dir),
        data=data,
        per_channel=per_channel,
        prune_threshold=prune_threshold,
        prune_topk=prune_topk,
        link_bits=link_bits,
        link_shift=link_shift,
        small_ram=small_ram,
        **input_quant_kwargs(input_scale, input_zero_point, input_range),
    )
    m = res.manifest
    for layer in m.all_layers():
        click.echo(
            f"  {layer.name:<12} {layer.n_in:>6} -> {layer.n_out:<6} {layer.format:<10} "
            f"nnz {layer.nnz:>7}  weights {layer.weight_bytes:>7} B  indices {layer.index_bytes:>7} B"
        )
    t, ram = m.totals.all, m.ram
    click.echo(
        f"wrote {res.directory}: {t.weight_bytes} B weights, {t.index_bytes} B indices, static RAM "
        f"{ram.static_bytes} B (arena {ram.arena_bytes}, scratch {ram.scratch_bytes}, exit flags {ram.state_bytes}), "
        f"exit threshold {m.exit_threshold} ({res.seconds:.2f} s)"
    )
    inq = m.quantization.input
    click.echo(f"input: q = round(x / {inq.scale:.6g}) + {inq.zero_point} ({m.quantization.input_source})")
    click.echo(f"link compression: {m.link.label}")
    for note in res.notes:
        click.echo(f"note: {note}")
