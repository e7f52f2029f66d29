"""mcuflow: split neural networks with predefined sparsity on Cortex-M microcontrollers."""

__version__ = "0.1.0"

from mcuflow.checkpoint import load, model_hash, save  # noqa: E402

__all__ = ["__version__", "load", "model_hash", "save"]
