"""Trained candidates on disk, by the hash of their config, training recipe, data and seed
(:func:`mcuflow.plan.space.config_hash`): a search for another board, a resumed search or another
sparsity mode that draws the same model trains it once."""

from __future__ import annotations

from pathlib import Path


class TrainedCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def get(self, key: str):
        """The trained model (a SplitNet, its ``meta`` with the validation scores) or None."""
        p = self.path(key)
        if not p.is_file():
            return None
        from mcuflow.checkpoint import load

        return load(p)

    def put(self, key: str, model, meta: dict) -> Path:
        from mcuflow.checkpoint import save

        self.directory.mkdir(parents=True, exist_ok=True)
        return save(model, self.path(key), meta=meta)  # atomic: a killed run leaves no half file
