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


INPUT_QUANT_OPTIONS = (
    click.option(
        "--input-scale", type=float, default=None, help="Input scale: q = round(x / scale) + zero point [calibrated]."
    ),
    click.option("--input-zero-point", type=int, default=None, help="Input zero point, -128..127 [calibrated]."),
    click.option(
        "--input-range",
        default=None,
        metavar="LO,HI",
        help="The range real inputs take (instead of --input-scale/--input-zero-point) [calibrated].",
    ),
)


def input_quant_options(f):
    """How real inputs become int8 on the device; by default from the calibration inputs' range."""
    for option in reversed(INPUT_QUANT_OPTIONS):
        f = option(f)
    return f


def input_quant_kwargs(input_scale, input_zero_point, input_range) -> dict:
    """The export() keyword arguments of the input quantisation options."""
    rng = None
    if input_range is not None:
        try:
            lo, hi = (float(v) for v in input_range.split(","))
        except ValueError:
            raise ConfigError(f"--input-range must be LO,HI (two numbers), got {input_range!r}") from None
        rng = (lo, hi)
    return {"input_scale": input_scale, "input_zero_point": input_zero_point, "input_range": rng}


class OutputPath(click.ParamType):
    """A file (or ``directory``) the command will write: refused at once, in one line, if it cannot be, so no
    training or session runs only to fail at the end."""

    name = "path"

    def __init__(self, directory: bool = False):
        self.directory = directory

    def convert(self, value, param, ctx) -> Path:
        from mcuflow.atomic import unwritable

        path = Path(value)
        problem = unwritable(path, directory=self.directory)
        if problem:
            self.fail(problem, param, ctx)
        return path
