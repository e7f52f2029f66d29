"""The checkpoint file: a ``torch.save`` zip archive of one dict, read with ``weights_only=True``.

Only its envelope is checked here (a zip archive, mcuflow's format, a version this mcuflow reads, the
entries that version has); what the entries mean is :mod:`mcuflow.checkpoint.formats`'.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from mcuflow.errors import CheckpointError

FORMAT = "mcuflow-checkpoint"
VERSION = 2  # what save writes
# The entries of each version and their types: 1 rebuilt the model from its ModelConfig alone,
# 2 stores the layer list of the modules themselves (and the config only where it describes them).
ENTRIES: dict[int, dict[str, type]] = {
    1: {"config": str, "meta": str, "state_dict": dict},
    2: {"structure": str, "config": str, "meta": str, "state_dict": dict},
}


def read_payload(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """The checkpoint's dict, its envelope checked. ``name`` is how messages call the file (default: its path)."""
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name} does not exist")
    # torch.save writes a zip archive; anything else would reach torch's legacy unpickler, which
    # raises arbitrary exceptions (IndexError, KeyError, ...) on hostile bytes.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{name} is not a readable checkpoint (corrupt or truncated? it is not a torch zip archive)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to parse untrusted bytes is a corrupt checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{name} is not a readable checkpoint (corrupt or truncated?): {first[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not an mcuflow checkpoint (save it with mcuflow.save)")
    version = payload.get("version")
    if isinstance(version, bool) or version not in ENTRIES:
        readable = " and ".join(str(v) for v in ENTRIES)
        raise CheckpointError(f"{name} has checkpoint version {version}; this mcuflow reads versions {readable}")
    for key, kind in ENTRIES[version].items():
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{name} is missing its {key!r} entry")
    return payload
