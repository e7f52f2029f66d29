"""``save`` and ``load``: a SplitNet to one checkpoint file and back, the same function either way."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mcuflow.atomic import atomic_output
from mcuflow.checkpoint.file import read_payload
from mcuflow.checkpoint.formats import model_from_payload, payload_of
from mcuflow.checkpoint.identity import config_mismatch
from mcuflow.checkpoint.probe import first_difference
from mcuflow.errors import CheckpointError, ConfigError
from mcuflow.nn.config import ModelConfig
from mcuflow.nn.split import SplitNet
from mcuflow.nn.structure import capture, input_features


def save(model: SplitNet, path: str | os.PathLike, config: ModelConfig | None = None, meta: dict | None = None) -> Path:
    """Write ``model`` atomically to ``path`` (format version 2: its layer list and state dict).

    ``config`` (default ``model.config``) is stored too when it describes the modules, and refused when
    it does not; a model without ``.config`` gets the one it was saved with, so that its ``model_hash``
    is the loaded model's. The file is read back and the reloaded model run against ``model`` before it
    replaces ``path``: a model the checkpoint would not give back is refused, naming where it first differs."""
    structure = capture(model)  # refuses, by path and type, what a checkpoint cannot hold
    config = config if config is not None else getattr(model, "config", None)
    if config is not None and (problem := config_mismatch(config, model, structure)) is not None:
        raise ConfigError(
            f"the ModelConfig does not describe the model's modules: {problem}; pass the config it was built "
            "from, or none (delete model.config) to save the modules as they are"
        )
    width = (config.input_size or config.sizes[0]) if config is not None else input_features(structure)
    if width is None:
        raise ConfigError(
            "cannot tell the width of the model's input: its head starts with no Unflatten, Pad, Linear, SparseLinear "
            "or BatchNorm1d"
        )
    payload = payload_of(model, structure, config, meta)
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
        reloaded = model_from_payload(read_payload(tmp, name=str(path)), str(path))
        where = first_difference(model, reloaded, width)
        if where is not None:
            raise CheckpointError(
                f"cannot save {path}: the model it would load differs from this one at {where} "
                "(a custom forward, or module state that the layer list does not hold)"
            )
    if config is not None and getattr(model, "config", None) is None:
        model.config = config  # type: ignore[attr-defined]
    return path


def load(path: str | os.PathLike) -> SplitNet:
    """The SplitNet saved at ``path``, in eval mode; ``model.meta`` is set, ``model.config`` when it has one."""
    return model_from_payload(read_payload(path), str(path))
