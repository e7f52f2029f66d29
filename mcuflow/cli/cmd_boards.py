"""``mcuflow boards``: list the known boards with their flash and RAM budgets."""

from __future__ import annotations

import click

from mcuflow.cli.main import cli


@cli.command("boards")
def boards_cmd() -> None:
    """List the boards mcuflow can build for, with their memory budgets."""
    from mcuflow.boards import list_boards

    rows = [("board", "cpu", "clock", "flash", "RAM", "uart", "counter", "runs on")]
    for b in list_boards():
        where = f"qemu {b.qemu.machine}" if b.qemu else (f"{b.flasher.tool}" if b.flasher else "-")
        if b.emulation:
            where += f"; qemu {b.emulation.machine} (--emulate)"
        clock = f"{b.clock_hz / 1e6:g} MHz"
        rows.append(
            (b.name, b.cpu, clock, _kib(b.flash_bytes), _kib(b.ram_bytes), b.uart.driver, b.counter.unit, where)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n:,} B"
