"""``mcuflow hil``: one command from checkpoint to a measured QEMU session."""

from __future__ import annotations

import sys

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


@cli.command("hil")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option(
    "--board", "-b", default="qemu-mps2-an386", show_default=True, help="A QEMU board (see `mcuflow boards`)."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="MNIST directory (default: $MCUFLOW_DATA_DIR, else the bundled 500 test images).",
)
@data_option("the session runs its test split, the export calibrates on its training split")
@click.option("--samples", "-n", type=int, default=None, help="Test samples to run [default: 1000, or all bundled].")
@click.option("--exit-threshold", type=float, default=None, help="Early-exit confidence threshold in (0, 1].")
@click.option("--format", "force_format", default=None, help="Force one weight storage format for every layer.")
@click.option("--calibration-samples", type=int, default=None, help="Images to calibrate int8 quantisation on.")
@click.option(
    "--tail",
    "tail_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A tail .onnx to finish offloaded samples with (onnxruntime) [the checkpoint's tail; an ONNX head has none].",
)
@click.option("--workdir", type=OutputPath(directory=True), default=None, help="Keep the export and build here.")
@click.option("--json", "json_path", type=OutputPath(), default=None, help="Write the results as JSON.")
@click.option("--report", "report_path", type=OutputPath(), default=None, help="Write an HTML report.")
@click.option(
    "--sweep",
    "sweep_csv",
    type=click.Path(dir_okay=False),
    default=None,
    help="A `mcuflow sweep` CSV for the report's accuracy-vs-parameters plot [default: the bundled one].",
)
@click.option(
    "--devices",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Emulated devices serving the samples in parallel (a HIL farm); each is its own QEMU.",
)
@click.option(
    "--timeout", type=float, default=None, help="Seconds to wait for each answer [default: 5, or 0.5 with --faults]."
)
@click.option(
    "--faults",
    default=None,
    metavar="SPEC",
    help="Inject link faults through a TCP proxy, e.g. drop=0.01,flip=0.001 (also dup, insert, garbage, "
    "delim, trunc, cut, reset; per=byte|frame; dir=down|up|both). The host resends and re-HELLOs.",
)
@click.option("--fault-seed", type=int, default=0, show_default=True, help="Seed of the injected faults (logged).")
@click.option(
    "--fragment",
    default="auto",
    show_default=True,
    metavar="auto|off|N",
    help="With --faults: send requests in parts of N bytes and resend only the lost ones "
    "(auto: once a whole frame times out, sized from the parts' survival; off: whole frames only).",
)
@click.option(
    "--profile/--no-profile",
    default=True,
    show_default=True,
    help="Also count instructions per layer on the device (a selftest firmware run, a few seconds).",
)
@click.option(
    "--emulate",
    is_flag=True,
    help="A hardware board: run its own image on its stand-in QEMU machine (the board file's [emulation]).",
)
@click.option(
    "--feed",
    type=click.Choice(["auto", "replay", "host"]),
    default="auto",
    show_default=True,
    help="Where the inputs come from: replay (put in the emulated device's memory before boot; it reads them "
    "as a sensor's and only answers cross the link) or host (each sent down the link). auto: replay where "
    "the board has a replay region, host with --faults.",
)
@click.option(
    "--frames",
    type=click.Choice(["auto", "lean", "full"]),
    default="auto",
    show_default=True,
    help="Lean answers (7 bytes of framing, no per-answer instruction count: the device's totals give it) "
    "or full ones. auto: lean when replaying.",
)
@click.option(
    "--replay-period",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="Pace the replay: counter units (instructions under QEMU) from one sample's start to the next; 0 runs free.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@link_options
@input_quant_options
def hil_command(
    checkpoint,
    board,
    data_dir,
    data,
    samples,
    exit_threshold,
    force_format,
    calibration_samples,
    tail_path,
    workdir,
    json_path,
    report_path,
    sweep_csv,
    devices,
    timeout,
    profile,
    emulate,
    quiet,
    prune_threshold,
    prune_topk,
    link_bits,
    link_shift,
    input_scale,
    input_zero_point,
    input_range,
    faults,
    fault_seed,
    fragment,
    feed,
    frames,
    replay_period,
):
    """Export CHECKPOINT, build it for a QEMU board, run test samples on it and report.

    The samples are replayed from the emulated device's own memory (--feed replay, the default where the
    board allows it: only answers cross the link, as from a sensor in the field) or sent over serial
    (--feed host).

    CHECKPOINT is a .pt, or an ONNX head (its offloads are finished by --tail tail.onnx, or reported
    unfinished).

    Every device answer is checked against the numpy int8 reference (class, exit
    decision, intermediate bytes). The JSON holds samples, accuracy,
    float_accuracy, reference_accuracy, exit_rate, parity_mismatches,
    bytes_up_per_sample, bytes_per_offload, bytes_down_per_sample,
    device_instructions_mean, samples_per_second and lost, among others, and
    format_version (`mcuflow report` reads the file back).
    Exits with status 3 when a sample was lost or differs from the reference, or when int8 loses more
    than 1 accuracy point against the float model.

    Example: mcuflow hil examples/paper_sparse.pt --board qemu-mps2-an386 --json out/hil.json
    With your own data: mcuflow hil digits.pt --data examples/digits.npz
    """
    from mcuflow.hil import fault_lines, run_hil, summary_lines, write_json

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    if faults is not None:
        from mcuflow.link.faults import FaultSpec

        FaultSpec.parse(faults)  # a bad spec fails before the export and build
    from mcuflow.link.fragment import parse_fragment

    fragment = parse_fragment(fragment)
    if timeout is None:
        timeout = 0.5 if faults is not None else 5.0
    result = run_hil(
        checkpoint,
        board,
        samples=samples,
        data_dir=data_dir_unless_data(data, data_dir),
        data=data,
        exit_threshold=exit_threshold,
        workdir=workdir,
        calibration_samples=calibration_samples,
        force_format=force_format,
        timeout=timeout,
        devices=devices,
        show_progress=not quiet,
        log=log,
        prune_threshold=prune_threshold,
        prune_topk=prune_topk,
        link_bits=link_bits,
        link_shift=link_shift,
        faults=faults,
        fault_seed=fault_seed,
        fragment=fragment,
        profile=profile,
        input_quant=input_quant_kwargs(input_scale, input_zero_point, input_range),
        tail_path=tail_path,
        emulate=emulate,
        feed=feed,
        frames=frames,
        replay_period=replay_period,
    )
    for line in summary_lines(result) + fault_lines(result):
        click.echo(line)
    if json_path:
        write_json(result, json_path)
        click.echo(f"results written to {json_path}")
    if report_path:
        from mcuflow.report import default_sweep, write_report

        write_report(result, report_path, sweep_csv or default_sweep())
        click.echo(f"report written to {report_path}")
    if not result.passed:
        click.echo(f"mcuflow: error: {'; '.join(result.problems())}", err=True)
        sys.exit(3)
