"""Storage and kernel plan of convolutional layers: the weights in the order ``mcuflow_conv`` reads them
and its constants (``firmware/kernels/conv.h``).

Per output pixel the kernel builds a permuted, channel-major patch in the int16 scratch,
``xp[u * T + t] = xpad[tap t, channel (u * p) mod c_in]`` for ``u < u_count`` (``T = kh * kw``; ``u``
past ``c_in`` repeats the first channels, so windows never wrap), then every output channel is one
contiguous dot product over its window of ``d_in`` channels (two where its row straddles a pass boundary
of the closed form). Its weights are stored channel-major to match, each piece in groups of four as
``(w0, w2, w1, w3)`` (SXTB16 order, a partial last group as is), pieces one after the other."""

from __future__ import annotations

import numpy as np

from mcuflow.ir.qconv import ConvKernel, ConvPacked, QConv2d, QPool2d, row_pieces


def _sxtb16_order(row: np.ndarray) -> np.ndarray:
    row = row.copy()
    full = (len(row) // 4) * 4
    if full:
        row[:full] = row[:full].reshape(-1, 4)[:, [0, 2, 1, 3]].reshape(-1)
    return row


def dense_row_pad(layer: QConv2d) -> int:
    """Zeros appended to every row of a dense conv so rows and the patch start on word boundaries (the DSP
    dot product then pairs its loads into LDRD); sparse windows start anywhere, so they get none."""
    dense = layer.degree == layer.in_shape.c and layer.s == 0
    return (-layer.degree * layer.taps) % 4 if dense else 0


def conv_weights(layer: QConv2d) -> tuple[np.ndarray, int]:
    """(device weights, u_count): the stored order and the patch's channel extent."""
    pad = dense_row_pad(layer)
    c_in, c_out, d_in, taps = layer.in_shape.c, layer.out_shape.c, layer.degree, layer.taps
    km = np.transpose(layer.weight, (0, 3, 1, 2)).reshape(c_out, d_in, taps)  # o, k, tap
    out, extent = [], 0
    for o, pieces in enumerate(row_pieces(c_in, c_out, d_in, layer.s)):
        k = 0
        for u0, n in pieces:
            piece = km[o, k : k + n].reshape(-1)
            if pad:  # dense: one piece per row
                piece = np.concatenate([piece, np.zeros(pad, dtype=piece.dtype)])
            out.append(_sxtb16_order(piece))
            extent = max(extent, u0 + n)
            k += n
    return np.concatenate(out).astype(np.int8), extent


def patch_len(entries: int) -> int:
    """A patch's entries in the scratch, rounded up to whole words (``mcuflow_conv_patch_len``)."""
    return (entries + 1) & ~1


def plan_conv(layer: QConv2d | QPool2d) -> None:
    """Set ``packed`` and ``kernel`` on a conv or pool layer."""
    if isinstance(layer, QPool2d):
        layer.packed = ConvPacked(f"{layer.op}pool", np.zeros(0, dtype=np.int8), 0)
        layer.kernel = ConvKernel(f"mcuflow_{layer.op}pool", layer.packed.values, 0)
        return
    w, extent = conv_weights(layer)
    pad = dense_row_pad(layer)
    row = layer.degree * layer.taps + pad
    dense_rows = layer.degree == layer.in_shape.c and layer.s == 0  # every row is the whole patch from u = 0
    layer.packed = ConvPacked("conv", w, layer.nnz)
    layer.kernel = ConvKernel(
        "mcuflow_conv",
        w,
        layer.degree,
        p=layer.p,
        s=layer.s,
        w_aligned=dense_rows and row % 4 == 0,
        x_aligned=dense_rows and row % 4 == 0,
        row_pad=pad,
        u_count=extent,
        scratch_entries=2 * patch_len(extent * layer.taps + pad),  # two pixels' patches
    )
