"""One-file checkpoints: JSON config + state dict, loaded with ``weights_only=True``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from mcuflow.errors import CheckpointError, ConfigError
from mcuflow.nn.config import ModelConfig, build_model
from mcuflow.nn.split import SplitNet

FORMAT = "mcuflow-checkpoint"
VERSION = 1


def save(model: SplitNet, path: str | os.PathLike, config: ModelConfig | None = None, meta: dict | None = None) -> Path:
    """Write ``model`` atomically to ``path``. ``config`` defaults to ``model.config``."""
    config = config or getattr(model, "config", None)
    if config is None:
        raise ConfigError("save() needs the ModelConfig the model was built from (pass config=...)")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "meta": json.dumps(meta or {}, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_payload(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    # torch.save writes a zip archive; anything else would reach torch's legacy unpickler, which
    # raises arbitrary exceptions (IndexError, KeyError, ...) on hostile bytes.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt or truncated? it is not a torch zip archive)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to parse untrusted bytes is a corrupt checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {first[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mcuflow checkpoint (save it with mcuflow.save)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this mcuflow reads {VERSION}")
    for key, kind in (("config", str), ("meta", str), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"{path} is missing its {key!r} entry")
    return payload


def load(path: str | os.PathLike) -> SplitNet:
    """Rebuild the SplitNet saved at ``path``; ``model.config`` and ``model.meta`` are set."""
    payload = read_payload(path)
    try:
        config = ModelConfig.from_dict(json.loads(payload["config"]))
        meta = json.loads(payload["meta"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} has a corrupt config: {err}") from None
    except ConfigError as err:
        raise CheckpointError(f"{path} has an invalid config: {err}") from None
    model = build_model(config)
    saved, fresh = payload["state_dict"], model.state_dict()
    for name, buf in fresh.items():
        # Patterns are regenerated from their seeds; a stored pattern that differs
        # would silently break index-free export, so refuse it.
        if name.endswith("columns") and name in saved and not torch.equal(saved[name], buf):
            raise CheckpointError(f"{path}: stored sparsity pattern {name} differs from the one its seed gives")
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match its config: {str(err).splitlines()[0]}") from None
    model.config = config  # type: ignore[attr-defined]
    model.meta = meta  # type: ignore[attr-defined]
    model.eval()
    return model


def model_hash(model: SplitNet) -> str:
    """SHA-256 over the config and every tensor, stable across save/load."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
