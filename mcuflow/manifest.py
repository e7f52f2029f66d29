"""An export directory on disk: ``export.json`` and ``quantized.npz``, read back into the IR."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mcuflow.codec.compress import LinkConfig
from mcuflow.errors import ConfigError
from mcuflow.ir.quantized import QExit, QLinear, QModel
from mcuflow.npz import read_npz
from mcuflow.sparsity.patterns import StructuredParams


def _layer_from_npz(z, key: str, meta: dict) -> QLinear:
    params = meta.get("structured")
    return QLinear(
        name=meta["name"],
        n_in=meta["n_in"],
        n_out=meta["n_out"],
        weight=z[f"{key}.weight"],
        columns=z[f"{key}.columns"].astype(np.int64),
        bias=z[f"{key}.bias"],
        mult=z[f"{key}.mult"],
        rshift=z[f"{key}.rshift"],
        in_scale=meta["input"]["scale"],
        in_zp=meta["input"]["zero_point"],
        w_scale=z[f"{key}.w_scale"],
        out_scale=meta["output"]["scale"],
        out_zp=meta["output"]["zero_point"],
        act_min=meta["act_min"],
        act_max=meta["act_max"],
        relu=meta["relu"],
        pattern=meta["pattern"],
        params=StructuredParams(**params) if params else None,
    )


def load_model(directory: str | Path) -> QModel:
    """The quantised model of an export directory (``export.json`` + ``quantized.npz``)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "export.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{directory} is not a readable mcuflow export: {err}") from None
    z = read_npz(directory / "quantized.npz", "the quantised weights")
    try:
        return _qmodel_from(meta, z)
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise ConfigError(f"{directory} is not a complete mcuflow export: missing or malformed {err}") from None


def _qmodel_from(meta: dict, z: dict[str, np.ndarray]) -> QModel:
    head = [_layer_from_npz(z, f"head{i}", m) for i, m in enumerate(meta["layers"]["head"])]
    exits = []
    for e, em in enumerate(meta["exits"]):
        layers = [_layer_from_npz(z, f"exit{e}.{j}", m) for j, m in enumerate(em["layers"])]
        exits.append(QExit(em["name"], em["at"], layers, z[f"exit{e}.lut"], em["threshold_q15"]))
    q = meta["quantization"]
    return QModel(
        name=meta["name"],
        model_hash=meta["model_hash"],
        input_len=meta["input_len"],
        padded_len=meta["padded_len"],
        input_scale=q["input"]["scale"],
        input_zp=q["input"]["zero_point"],
        head=head,
        exits=exits,
        num_classes=meta["num_classes"],
        exit_threshold=meta["exit_threshold"],
        per_channel=q["per_channel"],
        calibration_samples=q["calibration_samples"],
        source=meta["source"],
    )


def link_config(export_dir: str | Path) -> LinkConfig:
    """The link settings an export was built with."""
    meta = json.loads((Path(export_dir) / "export.json").read_text())
    d = meta.get("link") or {}
    return LinkConfig(**{k: int(d[k]) for k in ("threshold", "topk", "bits", "shift", "code_zp") if k in d})
