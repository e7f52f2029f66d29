"""The numpy integer model of exactly what the generated C does: the contract C must match bit for bit.

Use :func:`run` with a :class:`~mcuflow.ir.quantized.QModel` (from :func:`mcuflow.export.compile_model`)
or :func:`load_export` on an export directory, and a batch of int8 inputs ``(N, input_len)``.
:func:`tail_forward` runs the host tail (``tail.npz``) in float on a dequantised intermediate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuflow.errors import ConfigError
from mcuflow.ir.quantized import QExit, QLinear, QModel
from mcuflow.nn.patterns import StructuredParams
from mcuflow.npz import read_npz


@dataclass
class ReferenceResult:
    """Per sample (arrays of length N), as the device reports it."""

    exited: np.ndarray  # uint8
    exit_index: np.ndarray  # uint8 (0 where not exited)
    label: np.ndarray  # uint8 (argmax of the answering exit; 0 where not exited)
    confidence_q15: np.ndarray  # uint16 (0 where not exited)
    intermediate: np.ndarray  # int8 (N, intermediate_len): the head output, computed for every sample
    exit_logits: list[np.ndarray]  # per exit, int8 (N, num_classes), computed for every sample
    exit_confidence_q15: list[np.ndarray]  # per exit, uint16 (N,)
    exit_label: list[np.ndarray]  # per exit, uint8 (N,)
    evaluated: np.ndarray  # bool (N, num_exits): exits the device actually ran (in order, up to the answer)
    link: LinkResult | None = None  # the intermediate as sent over the link (set by link_offload's callers)


def requantize(acc: np.ndarray, mult: np.ndarray, rshift: np.ndarray) -> np.ndarray:
    """``(acc * mult + 2**(rshift-1)) >> rshift`` in int64, shifts arithmetic (as in C on gcc/clang/arm)."""
    acc = acc.astype(np.int64)
    mult = mult.astype(np.int64)
    rshift = rshift.astype(np.int64)
    return (acc * mult + (np.int64(1) << (rshift - 1))) >> rshift


def linear(layer: QLinear, x: np.ndarray) -> np.ndarray:
    """One quantised layer on int8 ``x`` (N, >= n_in) -> int8 (N, n_out)."""
    x = x.astype(np.int64)
    w = layer.weight.astype(np.int64)
    if (
        layer.degree == layer.n_in
        and np.array_equal(layer.columns[0], np.arange(layer.n_in))
        and (layer.columns == layer.columns[0]).all()
    ):
        acc = x[:, : layer.n_in] @ w.T
    else:
        acc = np.einsum("brk,rk->br", x[:, layer.columns], w)
    acc = acc + layer.bias.astype(np.int64)
    if np.abs(acc).max(initial=0) > 2**31 - 1:  # cannot happen: quantize bounds the bias
        raise AssertionError(f"{layer.name}: int32 accumulator overflow")
    y = requantize(acc, layer.mult, layer.rshift) + layer.out_zp
    return np.clip(y, layer.act_min, layer.act_max).astype(np.int8)


def exit_decision(ex: QExit, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, confidence_q15, exits) for int8 logits (N, C): the device's integer max-softmax test."""
    l64 = logits.astype(np.int64)
    label = np.argmax(l64, axis=1)  # first maximum: lowest index wins ties, as in C
    gap = l64.max(axis=1, keepdims=True) - l64
    total = ex.lut.astype(np.int64)[gap].sum(axis=1)
    conf = np.minimum(32767, (2**30 + (total >> 1)) // total)
    return label.astype(np.uint8), conf.astype(np.uint16), conf >= ex.threshold_q15


def run(model: QModel, inputs: np.ndarray) -> ReferenceResult:
    x = np.asarray(inputs)
    if x.ndim != 2 or x.shape[1] != model.input_len:
        raise ConfigError(f"inputs must be (N, {model.input_len}) int8, got {x.shape}")
    if x.dtype != np.int8:
        raise ConfigError(f"inputs must be int8 (quantised), got {x.dtype}")
    n = len(x)
    h = np.full((n, model.padded_len), model.input_zp, dtype=np.int8)
    h[:, : model.input_len] = x
    acts = [h]
    for layer in model.head:
        acts.append(linear(layer, acts[-1]))
    exited = np.zeros(n, dtype=bool)
    exit_index = np.zeros(n, dtype=np.uint8)
    label = np.zeros(n, dtype=np.uint8)
    conf = np.zeros(n, dtype=np.uint16)
    evaluated = np.zeros((n, len(model.exits)), dtype=bool)
    logits_all, conf_all, label_all = [], [], []
    # the device evaluates exits by attach position, then by index
    order = sorted(range(len(model.exits)), key=lambda e: (model.exits[e].at, e))
    results = {}
    for e in order:
        ex = model.exits[e]
        z = acts[ex.at]
        for layer in ex.layers:
            z = linear(layer, z)
        lab, c, ok = exit_decision(ex, z)
        results[e] = (z, lab, c)
        evaluated[:, e] = ~exited
        take = ok & ~exited
        exit_index[take], label[take], conf[take] = e, lab[take], c[take]
        exited |= take
    for e in range(len(model.exits)):
        z, lab, c = results[e]
        logits_all.append(z)
        label_all.append(lab)
        conf_all.append(c)
    return ReferenceResult(
        exited.astype(np.uint8), exit_index, label, conf, acts[-1], logits_all, conf_all, label_all, evaluated
    )


def quantize_input(x: np.ndarray, scale: float = 1.0 / 255.0, zero_point: int = -128) -> np.ndarray:
    """Host-side input quantisation ``clamp(round(x / scale) + zp)``; for pixels/255 this is ``pixel - 128``."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point, -128, 127).astype(np.int8)


def pixels_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST images (N, 28, 28) -> the device's int8 input (N, 784): exactly ``pixel - 128``."""
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    return (flat.astype(np.int16) - 128).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale)


@dataclass
class LinkResult:
    """What the device sends for each sample's intermediate under a link configuration."""

    codes: np.ndarray  # int8-held codes (N, intermediate_len): what the host decodes, compared for parity
    zero_point: int  # the OFFLOAD header's zero point (the fill of the sparse encodings)
    scale: float  # the OFFLOAD header's scale
    bits: int
    encoding: np.ndarray  # uint8 (N,): the encoding the device picks
    body_bytes: np.ndarray  # int64 (N,): its size (the OFFLOAD payload is 16 bytes more)

    def dequantize(self) -> np.ndarray:
        return dequantize(self.codes, self.scale, self.zero_point)


def link_offload(intermediate: np.ndarray, scale: float, zero_point: int, cfg) -> LinkResult:
    """The device's OFFLOAD compression (``mcuflow.link.encodings.LinkConfig``) on int8 head outputs."""
    from mcuflow.link import encodings

    codes, fill = encodings.link_codes(intermediate, zero_point, cfg)
    sizes = encodings.encoded_sizes(codes.reshape(-1, codes.shape[-1]), cfg.bits, fill)
    enc = np.argmin(sizes, axis=1)
    body = sizes[np.arange(len(sizes)), enc]
    return LinkResult(codes, fill, encodings.link_scale(scale, cfg), cfg.bits, enc.astype(np.uint8), body)


# ---------------------------------------------------------------- exports on disk


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


def load_export(directory: str | Path) -> QModel:
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


def tail_forward(tail: str | Path | dict, x: np.ndarray) -> np.ndarray:
    """The host tail in float32 numpy on dequantised intermediates ``x`` (N, intermediate_len) -> logits.

    ``tail`` is ``tail.npz`` from an export (or its loaded dict): ``n_layers``, then per layer ``i``:
    ``{i}.weight`` (out, d), ``{i}.columns`` (out, d), ``{i}.bias``, ``{i}.relu``.
    """
    z = read_npz(tail, "the tail weights") if isinstance(tail, str | Path) else tail
    h = np.asarray(x, dtype=np.float32)
    for i in range(int(z["n_layers"])):
        w, cols, b = z[f"{i}.weight"], z[f"{i}.columns"], z[f"{i}.bias"]
        if cols.shape[1] == h.shape[1] and (cols == np.arange(h.shape[1])).all():
            h = h @ w.T.astype(np.float32) + b  # dense: gathering would copy h once per output (N, out, in)
        else:
            h = np.einsum("brk,rk->br", h[:, cols], w, dtype=np.float32) + b
        if bool(z[f"{i}.relu"]):
            h = np.maximum(h, 0.0)
    return h
