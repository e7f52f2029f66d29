"""The host tail in float32 numpy: what ``tail.npz`` computes, without torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mcuflow.npz import read_npz


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
