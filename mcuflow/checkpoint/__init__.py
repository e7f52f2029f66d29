"""One-file checkpoints: the layer list of the modules and their state dict, read with ``weights_only=True``.

``save`` captures the structure of the actual modules (:mod:`mcuflow.nn.structure`), writes format
version 2 and refuses a model the file would not give back; ``load`` reads version 2 and the
config-based version 1 (:mod:`mcuflow.checkpoint.formats`); ``model_hash`` is the model's identity
(:mod:`mcuflow.checkpoint.identity`).
"""

from mcuflow.checkpoint.file import FORMAT, VERSION, read_payload
from mcuflow.checkpoint.identity import model_hash
from mcuflow.checkpoint.store import load, save

__all__ = ["FORMAT", "VERSION", "load", "model_hash", "read_payload", "save"]
