"""Command-line interface. Each command lives in its own module and registers on ``cli``."""

from mcuflow.cli.main import cli, main

# Command modules register themselves on import.
from mcuflow.cli import (  # noqa: E402,F401  isort: skip
    cmd_train,
    cmd_export,
    cmd_boards,
    cmd_build,
    cmd_flash,
    cmd_exits,
    cmd_sweep,
    cmd_run,
    cmd_hil,
    cmd_report,
    cmd_link_sweep,
    cmd_selftest,
    cmd_plan,
)

__all__ = ["cli", "main"]
