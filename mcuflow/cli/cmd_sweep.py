"""``mcuflow sweep``: reproduce the paper's Table I (sparse vs deep vs shallow at matched parameters)."""

from __future__ import annotations

from pathlib import Path

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import OutputPath, int_list
from mcuflow.errors import ConfigError


@cli.command("sweep")
@click.option("--families", default="sparse,deep,shallow", show_default=True, help="Comma-separated families to train.")
@click.option(
    "--levels",
    default="1,2,3,4,5",
    show_default=True,
    help="Parameter levels (rows of Table I): 1=2.45k, 2=4.1k, 3=5.7k, 4=11.6k, 5=16.7k.",
)
@click.option("--pattern", type=click.Choice(["structured", "random"]), default="structured", show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated training seeds (one run each).")
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--lr", type=float, default=3e-3, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--schedule", type=click.Choice(["none", "cosine", "step"]), default="cosine", show_default=True)
@click.option("--threads", type=int, default=None, help="Torch CPU threads (default 1: faster for these small layers).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MCUFLOW_DATA_DIR",
    help="Directory with the MNIST IDX files (env MCUFLOW_DATA_DIR).",
)
@click.option("--limit", type=int, default=None, help="Train on the first N training images only.")
@click.option("--test-limit", type=int, default=None, help="Evaluate on the first N test images only.")
@click.option(
    "--out-dir",
    type=OutputPath(directory=True),
    default=Path("sweep"),
    show_default=True,
    help="Where table.csv and accuracy_vs_params.png go.",
)
@click.option("--progress/--no-progress", "show_progress", default=True)
def sweep(
    families: str,
    levels: str,
    pattern: str,
    seeds: str,
    epochs: int,
    lr: float,
    batch_size: int,
    schedule: str,
    threads: int | None,
    data_dir: Path | None,
    limit: int | None,
    test_limit: int | None,
    out_dir: Path,
    show_progress: bool,
) -> None:
    """Train sparse, deep and shallow MLPs at the paper's five parameter budgets.

    Models have no early exit here (the table compares plain networks).
    Parameters are edges + biases; our counts for the first deep/shallow row are
    the paper's two numbers swapped (deep [800,3,3,10] = 2,455, shallow
    [800,3,10] = 2,443). Prints the table and writes OUT_DIR/table.csv and
    OUT_DIR/accuracy_vs_params.png.
    """
    from mcuflow.data import load_mnist
    from mcuflow.nn.sweep import format_table, plot, run_sweep, write_csv
    from mcuflow.nn.train import TrainConfig

    fams = tuple(f.strip() for f in families.split(",") if f.strip())
    bad = [f for f in fams if f not in ("sparse", "deep", "shallow")]
    if bad or not fams:
        raise ConfigError(f"--families takes sparse, deep, shallow; got {families!r}")
    lv = int_list(levels, "--levels") or []
    if not lv or any(not 1 <= v <= 5 for v in lv):
        raise ConfigError(f"--levels takes numbers 1..5, got {levels!r}")
    seed_list = int_list(seeds, "--seeds") or [0]
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, schedule=schedule, threads=threads)
    cfg.validate(0)
    train = load_mnist("train", data_dir).subset(limit).tensors()
    test = load_mnist("test", data_dir).subset(test_limit).tensors()

    def report(entry: dict) -> None:
        click.echo(
            f"  {entry['family']:<8} [{entry['sizes']}] {entry['out_degrees'] or '':<9} seed {entry['seed']}: "
            f"{entry['params']} params, {entry['accuracy']:.2f}% (paper {entry['paper_accuracy']:.2f}%)",
            err=True,
        )

    results = run_sweep(
        train,
        test,
        cfg,
        families=fams,
        levels=tuple(v - 1 for v in lv),
        pattern=pattern,
        seeds=tuple(seed_list),
        show_progress=show_progress,
        on_result=report,
    )
    click.echo(format_table(results))
    csv_path = write_csv(results, out_dir / "table.csv")
    png = plot(results, out_dir / "accuracy_vs_params.png")
    click.echo(f"csv: {csv_path}\nplot: {png}")
