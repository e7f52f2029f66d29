"""``mcuflow exits``: early-exit threshold analysis of a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import OutputPath, data_dir_unless_data, data_option
from mcuflow.errors import ConfigError


@cli.command("exits")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MCUFLOW_DATA_DIR",
    help="Directory with the MNIST IDX files (env MCUFLOW_DATA_DIR).",
)
@data_option("the analysis runs on its test split")
@click.option(
    "--bundled", is_flag=True, help="Use the 500 bundled test images (examples/) instead of the full test set."
)
@click.option("--test-limit", type=int, default=None, help="Use the first N test images only.")
@click.option(
    "--plot",
    "plot_path",
    type=OutputPath(),
    help="Save the accuracy-vs-exit-fraction plot (PNG).",
)
@click.option("--json", "json_path", type=OutputPath(), help="Write the full analysis as JSON.")
def exits(
    checkpoint: Path,
    data_dir: Path | None,
    data: Path | None,
    bundled: bool,
    test_limit: int | None,
    plot_path: Path | None,
    json_path: Path | None,
) -> None:
    """Sweep exit thresholds on max softmax probability and on entropy.

    For each threshold: the fraction of test samples leaving at the early exit,
    the accuracy of those, and the end-to-end accuracy (the others answered by
    the final output). Also reports the end-to-end accuracy when 50%, 70% and
    90% of the samples exit early (the most confident ones).
    """
    from mcuflow.checkpoint import load
    from mcuflow.data import DataRecord, bundled_test_subset, mnist_dataset, mnist_split, open_source
    from mcuflow.nn.exits_analysis import analyse_model, format_table, plot
    from mcuflow.nn.train import write_json

    model = load(checkpoint)
    if not model.exits:
        raise ConfigError(f"{checkpoint} has no early exit to analyse")
    if test_limit is not None and test_limit < 1:
        raise ConfigError("--test-limit must be at least 1")
    if bundled and data is not None:
        raise ConfigError("give --bundled or --data, not both")
    record = DataRecord.from_meta(getattr(model, "meta", None), str(checkpoint))
    if bundled:
        test = mnist_dataset(bundled_test_subset(), "bundled MNIST test subset (examples/)", record)
    elif data is not None:
        test = open_source(data).for_model("test", record)
    else:
        test = mnist_split("test", data_dir_unless_data(data, data_dir), record=record)
    x, y = test.head(test_limit).tensors()
    analysis = analyse_model(model, x, y)
    click.echo(format_table(analysis))
    if plot_path:
        plot(analysis, plot_path, title=f"early exit: {checkpoint.name}")
        click.echo(f"plot: {plot_path}")
    if json_path:
        write_json(analysis.to_dict(), json_path)
        click.echo(f"json: {json_path}")
