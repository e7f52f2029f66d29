"""``mcuflow link-sweep``: bytes on the link vs accuracy for OFFLOAD pruning and narrow codes;
also the ``mcuflow train --finetune-link`` implementation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mcuflow import atomic
from mcuflow.cli.main import cli
from mcuflow.cli.options import OutputPath, data_dir_unless_data, data_option, link_flags
from mcuflow.errors import ConfigError


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


def _shifts(text: str) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for v in text.replace(" ", "").split(","):
        if v == "auto":
            out.append(None)
        elif v:
            out.extend(_ints(v, "--shifts"))
    return tuple(out) or (None,)


@cli.command("link-sweep")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "-o",
    "--out-dir",
    type=OutputPath(directory=True),
    default=Path("link-sweep"),
    show_default=True,
    help="Where link_sweep.csv, link_pareto.png/.md and link_sweep.json go.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="MCUFLOW_DATA_DIR",
    help="MNIST directory (env MCUFLOW_DATA_DIR).",
)
@data_option("evaluate on its test split, calibrate on its training split")
@click.option("--samples", "-n", type=int, default=None, help="Test samples to evaluate [default: all].")
@click.option("--thresholds", default="0,4,8,16,32,48,64", show_default=True, help="Magnitude thresholds on |q - zp|.")
@click.option("--topks", default="0,16,12,10,8,6,5,4,3,2", show_default=True, help="Top-k values (0: off).")
@click.option("--bits", "bits_list", default="8,6,4,3,2", show_default=True, help="Bit widths of the sent values.")
@click.option(
    "--shifts", default="auto", show_default=True, help="Shifts for narrow values ('auto' fits the calibration)."
)
@click.option("--exit-threshold", type=float, default=None, help="Early-exit confidence threshold [export default].")
@click.option(
    "--max-loss",
    type=float,
    default=1.0,
    show_default=True,
    help="Accuracy loss budget (points) for the recommended setting.",
)
@click.option(
    "--baseline",
    "baseline_ckpt",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Measure the loss against this checkpoint's dense int8 accuracy (e.g. the model before fine-tuning).",
)
@click.option(
    "--verify",
    "verify_samples",
    type=int,
    default=0,
    show_default=True,
    help="Check the recommended setting in a QEMU hil session on this many test images (0: no).",
)
@click.option("--board", default="qemu-mps2-an386", show_default=True, help="QEMU board for --verify.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def link_sweep(
    checkpoint,
    out_dir,
    data_dir,
    data,
    samples,
    thresholds,
    topks,
    bits_list,
    shifts,
    exit_threshold,
    max_loss,
    baseline_ckpt,
    verify_samples,
    board,
    quiet,
):
    """Sweep OFFLOAD pruning (threshold, top-k) and value widths for CHECKPOINT.

    For every setting: bytes per offloaded sample (encoded tensor, OFFLOAD payload, frame on
    the wire), compression vs the dense float32 intermediate (the paper's baseline) and vs
    dense int8, and end-to-end accuracy of the int8 reference (bit-exact with the device)
    plus the host tail. Writes a CSV, the Pareto table and a Pareto plot.

    \b
    Example:
        mcuflow link-sweep examples/paper_sparse.pt -o out/link --verify 1000
    """
    from mcuflow.compression import sweep as S
    from mcuflow.progress import progress

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    data_dir = data_dir_unless_data(data, data_dir)
    ctx = S.prepare(checkpoint, data_dir=data_dir, data=data, samples=samples, exit_threshold=exit_threshold)
    configs = S.grid(
        ctx, _ints(thresholds, "--thresholds"), _ints(topks, "--topks"), _ints(bits_list, "--bits"), _shifts(shifts)
    )
    log(f"link-sweep: {len(configs)} settings on {ctx.source}")
    with progress(len(configs), "link-sweep", enabled=not quiet) as bar:
        rows, base = S.run_sweep(ctx, configs, progress=bar.update)
    reference_acc = base["accuracy"]
    if baseline_ckpt:
        bctx = S.prepare(baseline_ckpt, data_dir=data_dir, data=data, samples=samples, exit_threshold=exit_threshold)
        from mcuflow.codec.compress import LinkConfig

        reference_acc = S.evaluate(bctx, LinkConfig())["accuracy"]
    for r in rows:
        r["accuracy_loss_points"] = 100 * (reference_acc - r["accuracy"])
    best = S.best_within(rows, max_loss)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{Path(checkpoint).name}: link compression on {ctx.source}"
    S.write_csv(rows, out_dir / "link_sweep.csv")
    S.write_plot(rows, out_dir / "link_pareto.png", title)
    table = S.pareto_table(rows)
    atomic.write_bytes(out_dir / "link_pareto.md", ("\n".join([f"# {title}", "", *table]) + "\n").encode())
    summary = {
        "checkpoint": str(checkpoint),
        "data": ctx.source,
        "baseline_checkpoint": baseline_ckpt,
        "baseline_accuracy": reference_acc,
        "dense_int8": base,
        "max_loss_points": max_loss,
        "recommended": best,
        "pareto": [r for r in rows if r["pareto"]],
    }
    for line in table:
        click.echo(line)
    if best:
        click.echo(
            f"recommended within {max_loss:g} point(s): {best['label']}: {best['tensor_bytes']:.2f} B per offload "
            f"({best['compression_vs_float32']:.1f}x vs float32, {best['compression_vs_int8']:.2f}x vs int8), "
            f"accuracy {100 * best['accuracy']:.2f}% (loss {best['accuracy_loss_points']:.2f}); "
            f"export/hil flags: {link_flags(best)}"
        )
        if verify_samples:
            from mcuflow import jsonshape
            from mcuflow.hil import run_hil

            res = run_hil(
                checkpoint,
                board,
                samples=verify_samples,
                data_dir=data_dir,
                data=data,
                exit_threshold=exit_threshold,
                workdir=out_dir / "verify",
                show_progress=not quiet,
                log=log,
                prune_threshold=best["threshold"],
                prune_topk=best["topk"],
                link_bits=best["bits"],
                link_shift=best["shift"] if best["bits"] < 8 else None,
            )
            lc = res.link_compression
            summary["verify"] = {
                "samples": res.samples,
                "accuracy": res.accuracy,
                "reference_accuracy": res.reference_accuracy,
                "parity_mismatches": res.parity_mismatches,
                "lost": res.lost,
                "errors": res.errors,
                "bytes_per_offload": res.bytes_per_offload,
                "link": jsonshape.dump(lc),
            }
            click.echo(
                f"hil check ({res.samples} samples on {board}): accuracy {100 * res.accuracy:.2f}%, "
                f"parity mismatches {res.parity_mismatches}, {lc.tensor_bytes_per_offload:.2f} B tensor / "
                f"{lc.wire_bytes_per_offload_measured:.2f} B on the wire per offload"
            )
    else:
        click.echo(f"no setting stays within {max_loss:g} point(s) of {100 * reference_acc:.2f}%")
    atomic.write_bytes(out_dir / "link_sweep.json", (json.dumps(summary, indent=2, default=float) + "\n").encode())
    click.echo(f"wrote {out_dir}/link_sweep.csv, link_pareto.png, link_pareto.md, link_sweep.json")
