"""The ``mcuflow`` click group and the error boundary every command shares."""

from __future__ import annotations

import sys
import traceback

import click

from mcuflow.errors import McuflowError
from mcuflow.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcuflow")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """mcuflow: split neural networks with predefined sparsity on Cortex-M.

    Train a sparse split network with early exits, compile its head to int8 C,
    build firmware for a board or QEMU, and run host-in-the-loop sessions.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="mcuflow", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("mcuflow: aborted", err=True)
        return 130
    except click.ClickException as err:  # a usage mistake: one line too, with where to look
        hint = ""
        ctx = getattr(err, "ctx", None)
        if ctx is not None:
            hint = f" (see {ctx.command_path} --help)"
        click.echo(f"mcuflow: error: {err.format_message()}{hint}", err=True)
        return 1
    except click.exceptions.Exit as err:
        return err.exit_code
    except McuflowError as err:
        if debug:
            traceback.print_exc()
        click.echo(f"mcuflow: error: {err}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        click.echo("mcuflow: interrupted", err=True)
        return 130
    except Exception as err:  # a bug: say so in one line unless --debug
        if debug:
            traceback.print_exc()
        else:
            click.echo(f"mcuflow: internal error: {type(err).__name__}: {err} (rerun with --debug)", err=True)
        return 2
    return 0
