"""Option groups shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from mcuflow.errors import ConfigError

LINK_OPTIONS = (
    click.option(
        "--prune-threshold", type=int, default=0, show_default=True, help="Link: prune |q - zp| <= T on the device."
    ),
    click.option(
        "--prune-topk", type=int, default=0, show_default=True, help="Link: send only the K largest values (0: all)."
    ),
    click.option(
        "--link-bits",
        type=click.IntRange(2, 8),
        default=8,
        show_default=True,
        help="Link: bits per sent value (8, 6, 4...).",
    ),
    click.option(
        "--link-shift", type=click.IntRange(0, 8), default=None, help="Link: right shift for --link-bits < 8 [auto]."
    ),
)


def link_options(f):
    """The on-device pruning and narrowing of the offloaded tensor (export and hil)."""
    for option in reversed(LINK_OPTIONS):
        f = option(f)
    return f


DATA_KINDS = "an IDX directory, an .npz with x and y (x_test, y_test), or a folder of class folders of PNGs"


def data_option(use: str):
    """``--data PATH``: the user's own data instead of MNIST; ``use`` says what the command does with it."""
    return click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=None,
        metavar="PATH",
        help=f"Your data: {DATA_KINDS}; {use} [default: MNIST].",
    )


def data_dir_unless_data(data: Path | None, data_dir):
    """The ``--data-dir`` to use: ``--data`` overrides ``$MCUFLOW_DATA_DIR``; both flags given is an error."""
    if data is None:
        return data_dir
    if data_dir is not None:
        source = click.get_current_context().get_parameter_source("data_dir")
        if source not in (ParameterSource.ENVIRONMENT, ParameterSource.DEFAULT):
            raise ConfigError("give --data or --data-dir, not both (--data-dir is MNIST's directory)")
    return None


def int_list(text: str | None, what: str) -> list[int] | None:
    """Parse ``"800,40,40,10"``; ``None``/``""``/``"none"`` give ``None``."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


def float_list(text: str | None, what: str) -> list[float] | None:
    if text is None or text.strip() == "":
        return None
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def tail_hidden_option(text: str | None) -> list[int] | None:
    """``--tail-hidden``: absent keeps the checkpoint's tail (None); ``none`` is a single linear layer ([])."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    widths = int_list(text, "--tail-hidden")
    if not widths or any(w < 1 for w in widths):
        raise ConfigError(f"--tail-hidden must be positive comma-separated widths or 'none', got {text!r}")
    return widths


def link_flags(cfg: dict) -> str:
    """The export/hil options that reproduce a link configuration."""
    flags = []
    if cfg["threshold"]:
        flags.append(f"--prune-threshold {cfg['threshold']}")
    if cfg["topk"]:
        flags.append(f"--prune-topk {cfg['topk']}")
    if cfg["bits"] != 8:
        flags.append(f"--link-bits {cfg['bits']} --link-shift {cfg['shift']}")
    return " ".join(flags) or "(none: dense int8)"
