"""Train a candidate (or take it from the cache) and score it on the validation split: accuracy of the
end-to-end answer under the exit rule at the candidate's threshold, and the exit rate. The test split is
never read here."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mcuflow.plan.cache import TrainedCache
from mcuflow.plan.space import Candidate, config_hash


@dataclass(frozen=True)
class Recipe:
    """How every candidate is trained (`mcuflow train`'s options of the same names)."""

    epochs: int = 5
    lr: float = 1e-2
    batch_size: int = 256
    batchnorm: bool = True
    seed: int = 0

    def train_config(self):
        from mcuflow.nn.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, batchnorm=self.batchnorm, seed=self.seed
        )


@dataclass
class PlanData:
    """The training rows and the held-out validation rows (the last ``val`` of the training split)."""

    train: Any  # mcuflow.data.Dataset
    val: Any
    data_id: str
    full_train: Any = None  # every training row but the validation ones (the chosen model's retraining)

    @classmethod
    def split(cls, train_set, val_samples: int, train_limit: int | None) -> PlanData:
        from mcuflow.errors import ConfigError

        if not 0 < val_samples < len(train_set):
            raise ConfigError(
                f"--val-samples {val_samples} must leave training images (the training split has {len(train_set)})"
            )
        keep = len(train_set) - val_samples
        val, full = train_set.rows(keep), train_set.head(keep)
        return cls(
            train=full.head(train_limit), val=val, data_id=_data_id(full.head(train_limit), val), full_train=full
        )

    def full(self) -> PlanData:
        """The same split with every non-validation training row (``train_limit`` lifted)."""
        full = self.full_train if self.full_train is not None else self.train
        return PlanData(train=full, val=self.val, data_id=_data_id(full, self.val), full_train=full)


def _data_id(train, val) -> str:
    h = hashlib.sha256()
    for part in (train.raw, train.y, val.raw, val.y):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update(repr(train.normalization).encode())
    return h.hexdigest()[:24]


def key_of(cand: Candidate, recipe: Recipe, data: PlanData) -> str:
    return config_hash(cand.model, asdict(recipe), data.data_id)


def train_candidate(cand: Candidate, recipe: Recipe, data: PlanData, cache: TrainedCache, epochs: int | None = None):
    """``(model, trained_now)``: from the cache when this config, recipe and data were trained before."""
    r = recipe if epochs is None else Recipe(**(asdict(recipe) | {"epochs": epochs}))
    key = key_of(cand, r, data)
    model = cache.get(key)
    if model is not None:
        return model, False, key
    from mcuflow.nn.train import build_and_train, set_threads

    set_threads(1)
    res = build_and_train(
        cand.config(), data.train.tensors(), None, r.train_config(), show_progress=False, eval_every_epoch=False
    )
    meta = {"plan": {"recipe": asdict(r), "data_id": data.data_id}, "data": data.train.record().to_meta()}
    cache.put(key, res.model, meta)
    return cache.get(key), True, key


def score(model, cand: Candidate, val) -> dict[str, float]:
    """Validation accuracy (float model, exit rule at the threshold) and the fraction that exits."""
    import torch

    from mcuflow import exitrule

    x = torch.from_numpy(np.ascontiguousarray(val.inputs()))
    with torch.no_grad():
        exit_logits, final = model.eval()(x)
    pred = final.argmax(1).numpy()
    rate = 0.0
    if model.exits:  # the first exit that is confident enough answers; the rest go on (tail or final layer)
        best = [torch.softmax(lg, 1).max(1) for lg in exit_logits]
        d = exitrule.decide(
            [c.numpy() for c, _ in best], cand.exit_threshold, attach=model.exit_points, samples=len(pred)
        )
        pred = d.answer([k.numpy() for _, k in best], pred)
        rate = float(d.exited.mean())
    return {"accuracy": float((pred == val.y).mean()), "exit_rate": rate}
