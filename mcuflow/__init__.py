"""mcuflow: split neural networks with predefined sparsity on Cortex-M microcontrollers.

``mcuflow.load``, ``mcuflow.save`` and ``mcuflow.model_hash`` live in :mod:`mcuflow.checkpoint`, which
needs torch; they are imported on first use, so ``import mcuflow`` (and every torch-free room below it:
the compiler, the wire protocol, boards and builds) never pays for loading torch.
"""

from mcuflow.version import __version__

_CHECKPOINT_API = ("load", "model_hash", "save")


def __getattr__(name: str):
    if name in _CHECKPOINT_API:
        from mcuflow import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'mcuflow' has no attribute {name!r}")


__all__ = ["__version__", "load", "model_hash", "save"]
