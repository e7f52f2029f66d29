"""What the device sends for a sample's head output under a link configuration: the OFFLOAD
compression (:mod:`mcuflow.codec.compress`) and the encoding the device picks for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcuflow.codec import compress, encodings
from mcuflow.reference.quantization import dequantize


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
    """The device's OFFLOAD compression (``mcuflow.codec.compress.LinkConfig``) on int8 head outputs."""
    codes, fill = compress.link_codes(intermediate, zero_point, cfg)
    sizes = encodings.encoded_sizes(codes.reshape(-1, codes.shape[-1]), cfg.bits, fill)
    enc = np.argmin(sizes, axis=1)
    body = sizes[np.arange(len(sizes)), enc]
    return LinkResult(codes, fill, compress.link_scale(scale, cfg), cfg.bits, enc.astype(np.uint8), body)
