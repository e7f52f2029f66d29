"""``mcuflow report``: the HTML report of a HIL session from its JSON."""

from __future__ import annotations

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import OutputPath


@cli.command("report")
@click.argument("result_json", type=click.Path(dir_okay=False))
@click.option("--output", "-o", type=OutputPath(), required=True, help="HTML file to write.")
@click.option(
    "--sweep",
    "sweep_csv",
    type=click.Path(dir_okay=False),
    default=None,
    help="A `mcuflow sweep` CSV for the accuracy-vs-parameters plot [default: the bundled one].",
)
def report_command(result_json, output, sweep_csv):
    """Render RESULT_JSON (from `mcuflow hil --json`) as one self-contained HTML file.

    Example: mcuflow report out/hil.json -o out/report.html
    """
    from mcuflow.hil_result import read_result
    from mcuflow.report import default_sweep, write_report

    result = read_result(result_json)
    write_report(result, output, sweep_csv or default_sweep())
    click.echo(f"report written to {output}")
