"""A tiny progress reporter: a redrawn bar on a terminal, occasional plain lines otherwise.

    with progress(total, "train") as bar:
        for batch in batches:
            ...
            bar.update(loss=0.31)

Everything goes to stderr so a command's stdout stays clean for its results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


def _format_fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


class Progress:
    """Counts steps towards ``total``; see :func:`progress`."""

    def __init__(self, total: int, label: str, stream: IO[str], tty: bool, width: int = 30, every: float = 0.1):
        self.total = max(0, int(total))
        self.label = label
        self.stream = stream
        self.tty = tty
        self.width = width
        self.done = 0
        self.fields: dict[str, Any] = {}
        self._start = time.monotonic()
        self._every = every
        self._next_report = every  # fraction of total at which the next plain line is printed
        self._last_draw = 0.0

    def update(self, n: int = 1, **fields: Any) -> None:
        """Advance by ``n`` steps; ``fields`` (e.g. loss=0.3) are shown next to the bar."""
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        self.fields.update(fields)
        if self.tty:
            now = time.monotonic()
            # Redrawing costs a write per step; a few per second is enough to look live.
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self._draw()
        elif self.total:
            frac = self.done / self.total
            if frac + 1e-12 >= self._next_report and self.done < self.total:
                self._line()
                while self._next_report <= frac + 1e-12:
                    self._next_report += self._every

    def set(self, **fields: Any) -> None:
        """Change the shown fields without advancing."""
        self.fields.update(fields)

    def write(self, message: str) -> None:
        """Print a line without garbling the bar."""
        if self.tty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(message + "\n")
        if self.tty:
            self._draw()
        self.stream.flush()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._start:.1f}s"

    def _draw(self) -> None:
        if self.total:
            filled = int(self.width * self.done / self.total)
            bar = "#" * filled + "-" * (self.width - filled)
            head = f"{self.label} [{bar}] {self.done}/{self.total}"
        else:
            head = f"{self.label} {self.done}"
        extra = _format_fields(self.fields)
        self.stream.write("\r\x1b[2K" + head + f" {self._elapsed()}" + (f" {extra}" if extra else ""))
        self.stream.flush()

    def _line(self) -> None:
        pct = 100.0 * self.done / self.total if self.total else 0.0
        extra = _format_fields(self.fields)
        self.stream.write(
            f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) {self._elapsed()}"
            + (f" {extra}" if extra else "")
            + "\n"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._draw()
            self.stream.write("\n")
        else:
            self._line()
        self.stream.flush()


@contextmanager
def progress(
    total: int, label: str = "", stream: IO[str] | None = None, enabled: bool = True, tty: bool | None = None
) -> Iterator[Progress]:
    """Report progress over ``total`` steps to ``stream`` (stderr by default).

    On a terminal the bar is redrawn in place; otherwise a plain line is printed
    every 10% and at the end, so logs stay readable. ``enabled=False`` prints nothing.
    """
    stream = stream if stream is not None else sys.stderr
    if tty is None:
        isatty = getattr(stream, "isatty", None)
        tty = bool(isatty and isatty())
    if not enabled:
        stream = _Null()
    bar = Progress(total, label, stream, tty)
    try:
        yield bar
    finally:
        bar.close()


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass
