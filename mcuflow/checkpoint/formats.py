"""What a checkpoint's entries mean, per format version, and the model each version gives back.

Version 2 (written by :func:`mcuflow.save`)::

    {"format": "mcuflow-checkpoint", "version": 2,
     "structure": JSON layer list (mcuflow.nn.structure.ModelStructure: head, exits with "at", tail),
     "config": JSON ModelConfig, or "null" when the model was not built from one that describes it,
     "meta": JSON object, "state_dict": {name: tensor}}

Version 1 had no "structure": the model was rebuilt from its config alone. Both are read, each by its
own reader; neither is a fallback for the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from mcuflow.checkpoint.file import FORMAT, VERSION
from mcuflow.checkpoint.identity import config_mismatch
from mcuflow.errors import CheckpointError, ConfigError
from mcuflow.nn.config import ModelConfig, build_model
from mcuflow.nn.conv import SparseConv1d, SparseConv2d
from mcuflow.nn.sparse import SparseLinear
from mcuflow.nn.split import SplitNet
from mcuflow.nn.structure import ModelStructure, rebuild


def payload_of(model: SplitNet, structure: ModelStructure, config: ModelConfig | None, meta: dict | None) -> dict:
    """The version-2 dict ``torch.save`` writes."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "structure": json.dumps(structure.to_json(), sort_keys=True),
        "config": json.dumps(config.to_dict() if config is not None else None, sort_keys=True),
        "meta": json.dumps(meta or {}, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def model_from_payload(payload: dict[str, Any], name: str) -> SplitNet:
    """The model a checked payload (:func:`mcuflow.checkpoint.file.read_payload`) holds, in eval mode."""
    meta = _json(payload, "meta", name)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name} has a corrupt meta entry (not a JSON object)")
    model, config = READERS[payload["version"]](payload, name)
    if config is not None:
        model.config = config  # type: ignore[attr-defined]
    model.meta = meta  # type: ignore[attr-defined]
    model.eval()
    return model


def _from_v1(payload: dict[str, Any], name: str) -> tuple[SplitNet, ModelConfig]:
    """Version 1: the model its config builds, then the weights (as mcuflow read it when it wrote it)."""
    config = _config(payload, name)
    if config is None:
        raise CheckpointError(f"{name} has no config (a version-1 checkpoint is rebuilt from it)")
    model = build_model(config)
    _check_patterns(model, payload["state_dict"], name)
    load_state(model, payload["state_dict"], name, "its config")
    return model, config


def _from_v2(payload: dict[str, Any], name: str) -> tuple[SplitNet, ModelConfig | None]:
    """Version 2: the modules of the layer list, then the weights; a config must describe those modules."""
    try:
        structure = ModelStructure.from_json(_json(payload, "structure", name))
        # Fresh modules draw initial weights that the state dict replaces: leave the caller's random stream alone.
        with torch.random.fork_rng(devices=[]):
            model = rebuild(structure)
    except ConfigError as err:
        raise CheckpointError(f"{name} has an invalid layer list: {err}") from None
    config = _config(payload, name)
    _check_patterns(model, payload["state_dict"], name)
    load_state(model, payload["state_dict"], name, "its layer list")
    if config is not None and (problem := config_mismatch(config, model, structure)) is not None:
        raise CheckpointError(f"{name} has a config that does not describe its layers: {problem}")
    return model, config


READERS: dict[int, Callable[[dict[str, Any], str], tuple[SplitNet, ModelConfig | None]]] = {1: _from_v1, 2: _from_v2}


def _json(payload: dict[str, Any], key: str, name: str) -> Any:
    try:
        return json.loads(payload[key])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{name} has a corrupt {key}: {err}") from None


def _config(payload: dict[str, Any], name: str) -> ModelConfig | None:
    data = _json(payload, "config", name)
    if data is None:
        return None
    try:
        return ModelConfig.from_dict(data)
    except ConfigError as err:
        raise CheckpointError(f"{name} has an invalid config: {err}") from None


def _check_patterns(model: SplitNet, saved: dict[str, Any], name: str) -> None:
    # Patterns are regenerated from their seeds; a stored pattern that differs would silently
    # break index-free export, so refuse it.
    for path, module in model.named_modules():
        buffers = {
            SparseLinear: ("columns",),
            SparseConv1d: ("channels", "tap_mask"),
            SparseConv2d: ("channels", "tap_mask"),
        }
        for buffer in buffers.get(type(module), ()):
            key = f"{path}.{buffer}"
            stored = saved.get(key)
            if isinstance(stored, torch.Tensor) and (
                stored.shape != getattr(module, buffer).shape or not torch.equal(stored, getattr(module, buffer))
            ):
                raise CheckpointError(f"{name}: stored sparsity pattern {key} differs from the one its seed gives")


def _owner(model: SplitNet, key: str) -> str:
    path = key.rpartition(".")[0]
    try:
        return f"{path} ({type(model.get_submodule(path)).__name__})"
    except AttributeError:
        return f"{path} (no such layer)"


def state_problem(model: SplitNet, saved: dict[str, Any]) -> str | None:
    """The first reason ``saved`` cannot be ``model``'s state dict, naming the tensor and its layer; None if it fits."""
    expected = model.state_dict()
    for key, t in saved.items():
        if not isinstance(key, str) or not isinstance(t, torch.Tensor):
            return f"entry {key!r} is not a named tensor"
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if missing and unexpected:  # tensors under other names: usually layers at other positions
        return (
            f"{missing[0]} of {_owner(model, missing[0])} is not in the file, which holds {unexpected[0]} instead "
            f"({len(missing)} tensors missing, {len(unexpected)} unexpected)"
        )
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"{missing[0]} of {_owner(model, missing[0])} is not in the file{more}"
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        return f"the file has {unexpected[0]}, which {_owner(model, unexpected[0])} does not hold{more}"
    for key, want in expected.items():
        got = saved[key]
        if got.shape != want.shape:
            return f"{key} is {tuple(got.shape)} in the file but {tuple(want.shape)} in {_owner(model, key)}"
        if got.dtype != want.dtype:
            return f"{key} is {got.dtype} in the file but {want.dtype} in {_owner(model, key)}"
    return None


def load_state(model: SplitNet, saved: dict[str, Any], name: str, what: str) -> None:
    """Load ``saved`` into ``model`` strictly; a mismatch is one line naming the tensor and its layer."""
    problem = state_problem(model, saved)
    if problem is not None:
        raise CheckpointError(f"{name}: the weights do not match {what}: {problem}")
    try:
        model.load_state_dict(saved, strict=True)
    except RuntimeError as err:  # not expected after the checks above; still one line
        lines = [s.strip() for s in str(err).splitlines() if s.strip()]
        raise CheckpointError(f"{name}: the weights do not match {what}: {' '.join(lines)[:300]}") from None
