"""Which model a SplitNet is: whether its ModelConfig describes its modules, and its ``model_hash``.

The hash is the identity the device reports in HELLO and an export records, so it must not move for
the checkpoints mcuflow has already written. A model whose ModelConfig describes its modules hashes
as version 1 did (the config's JSON, then every tensor), wherever it was saved; any other model
hashes its layer list instead of a config. Both are stable across save and load.
"""

from __future__ import annotations

import hashlib
import json

import torch

from mcuflow.errors import ConfigError
from mcuflow.nn.config import ModelConfig, build_model
from mcuflow.nn.split import SplitNet
from mcuflow.nn.structure import ModelStructure, capture, first_difference

# Marks a layer-list hash, so that no config JSON and layer-list JSON can hash alike.
STRUCTURE_TAG = b"mcuflow-structure\n"


def config_mismatch(config: ModelConfig, model: SplitNet, structure: ModelStructure | None = None) -> str | None:
    """Why ``config`` does not describe ``model``'s modules (the first layer that differs), or None."""
    # Building the reference model draws initial weights: keep the caller's random stream untouched.
    with torch.random.fork_rng(devices=[]):
        try:
            reference = build_model(config)
        except ConfigError as err:
            return f"the config is invalid: {err}"
    problem = first_difference(structure or capture(model), capture(reference))
    return None if problem is None else f"{problem} (model vs config)"


def describing_config(model: SplitNet) -> ModelConfig | None:
    """``model.config`` when it describes the modules, else None."""
    config = getattr(model, "config", None)
    if config is None or config_mismatch(config, model) is not None:
        return None
    return config


def model_hash(model: SplitNet) -> str:
    """SHA-256 over the config (or, without one that describes the model, the layer list) and every tensor."""
    h = hashlib.sha256()
    config = describing_config(model)
    if config is not None:
        h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    else:
        h.update(STRUCTURE_TAG + json.dumps(capture(model).to_json(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
