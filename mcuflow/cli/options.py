"""Option groups shared by several commands."""

from __future__ import annotations

import click

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
