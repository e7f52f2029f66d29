"""Host-side conversions between real values and the device's int8 codes."""

from __future__ import annotations

import numpy as np


def quantize_input(x: np.ndarray, scale: float = 1.0 / 255.0, zero_point: int = -128) -> np.ndarray:
    """Host-side input quantisation ``clamp(round(x / scale) + zp)``; for pixels/255 this is ``pixel - 128``."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point, -128, 127).astype(np.int8)


def pixels_to_input(images: np.ndarray) -> np.ndarray:
    """uint8 MNIST images (N, 28, 28) -> the device's int8 input (N, 784): exactly ``pixel - 128``."""
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    return (flat.astype(np.int16) - 128).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.float32) - np.float32(zero_point)) * np.float32(scale)
