"""Eager, safe reading of ``.npz`` archives (no pickles; any corruption becomes one clear error)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mcuflow.errors import ConfigError, McuflowError


def read_npz(path: str | os.PathLike, what: str, error: type[McuflowError] = ConfigError) -> dict[str, np.ndarray]:
    """Every array of ``path``, read now, so a corrupt member fails here and not at first use.

    ``what`` names the file for the message ("the tail weights"); ``error`` is the class raised.
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("it is a single .npy array, not an .npz archive")
        with z:
            return {k: z[k] for k in z.files}
    except Exception as err:  # noqa: BLE001 - zipfile, zlib and numpy raise a zoo of types on bad bytes
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise error(f"cannot read {what} {path}: {detail}") from None
