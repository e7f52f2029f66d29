"""Atomic file output: write beside the target, then rename, so a failure leaves no half file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary file name next to ``path``; on success it replaces ``path``.

    The file gets the usual umask permissions (mkstemp alone would leave 0600).
    ``suffix`` keeps an extension for writers that choose a format by it (matplotlib).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def unwritable(path: str | os.PathLike, directory: bool = False) -> str | None:
    """Why ``path`` cannot be written as a file (or, ``directory``, created or replaced as a directory), or
    None. Checked before long work starts; it tries what an atomic write needs: a new entry beside it."""
    p = Path(path)
    if p.exists() and p.is_dir() != directory:
        return f"{p} exists and is {'not ' if directory else ''}a directory"
    parent = p.parent
    while not parent.exists():  # the directories an atomic write would create
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".mcuflow-write-check.", dir=parent)
    except OSError as err:
        return f"cannot write in {parent}: {err.strerror or err}"
    os.close(fd)
    os.unlink(probe)
    return None
