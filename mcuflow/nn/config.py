"""ModelConfig: the JSON-serialisable description a SplitNet is rebuilt from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.nn.sparse import Pad, SparseLinear
from mcuflow.nn.split import SplitNet
from mcuflow.sparsity.patterns import PATTERN_KINDS, in_degree

FAMILIES = ("sparse", "deep", "shallow")


@dataclass
class ExitConfig:
    """An early-exit branch reading the output of head junction ``at`` (1-based)."""

    at: int
    hidden: list[int] = field(default_factory=list)


@dataclass
class ModelConfig:
    """``sizes`` are the layer widths, input first; ``out_degrees[j]`` is the
    out-degree of junction ``j`` (``None`` for fully connected, and a degree
    equal to the next width is dense too). ``split`` is the number of junctions
    on the device; all of them (``split == len(sizes) - 1``) puts the whole model
    there, its final layer answering every sample the exits leave, with an empty
    tail. ``input_size`` below ``sizes[0]`` means zero-padding.

    ``tail_hidden`` set (a possibly empty list of widths) replaces the junctions after the split
    by a fully connected host tail ``sizes[split] -> *tail_hidden -> n_classes`` with ReLUs
    between: the tail runs on the host, so it need not keep the device's sparsity or widths.
    ``None`` (the default, and every checkpoint written before it existed) keeps them."""

    sizes: list[int]
    out_degrees: list[int] | None = None
    family: str = "sparse"
    pattern: str = "structured"
    seed: int = 0
    split: int = 1
    exits: list[ExitConfig] = field(default_factory=list)
    input_size: int | None = None
    tail_hidden: list[int] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if not isinstance(d, dict):
            raise ConfigError("model config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        try:
            d = dict(d)
            d["exits"] = [e if isinstance(e, ExitConfig) else ExitConfig(**e) for e in d.get("exits", [])]
            cfg = cls(**d)
        except TypeError as err:
            raise ConfigError(f"bad model config: {err}") from None
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["tail_hidden"] is None:
            del d["tail_hidden"]  # configs (and model hashes) of models without one stay as they were
        return d

    @property
    def n_junctions(self) -> int:
        return len(self.sizes) - 1

    def degree(self, j: int) -> int:
        if self.out_degrees is None:
            return self.sizes[j + 1]
        return self.out_degrees[j]

    def is_sparse(self, j: int) -> bool:
        return self.degree(j) < self.sizes[j + 1]

    def validate(self) -> None:
        if len(self.sizes) < 2 or any(not isinstance(s, int) or s <= 0 for s in self.sizes):
            raise ConfigError(f"sizes must be at least two positive integers, got {self.sizes}")
        if self.family not in FAMILIES:
            raise ConfigError(f"unknown family {self.family!r}; choose one of {', '.join(FAMILIES)}")
        if self.pattern not in PATTERN_KINDS:
            raise ConfigError(f"unknown pattern {self.pattern!r}; choose one of {', '.join(PATTERN_KINDS)}")
        if self.out_degrees is not None:
            if len(self.out_degrees) != self.n_junctions:
                raise ConfigError(
                    f"{len(self.out_degrees)} out-degrees given for {self.n_junctions} junctions (sizes {self.sizes})"
                )
            for j, d in enumerate(self.out_degrees):
                try:
                    in_degree(self.sizes[j], self.sizes[j + 1], d)
                except ValueError as err:
                    raise ConfigError(f"junction {j + 1}: {err}") from None
        if not 1 <= self.split <= self.n_junctions:
            raise ConfigError(
                f"split {self.split} must put 1..{self.n_junctions} junctions on the device "
                f"({self.n_junctions}: the whole model)"
            )
        if self.input_size is not None and not 0 < self.input_size <= self.sizes[0]:
            raise ConfigError(f"input_size {self.input_size} must be between 1 and sizes[0] = {self.sizes[0]}")
        last = self.split - 1 if self.whole_on_device else self.split
        for e in self.exits:
            if self.whole_on_device and e.at == self.split:
                raise ConfigError(
                    f"exit at junction {e.at} would read the final layer's logits; with the whole model on the "
                    f"device the final layer answers by itself (exits at junctions 1..{last})"
                )
            if not 1 <= e.at <= self.split:
                raise ConfigError(f"exit at junction {e.at} is not on the device (head junctions 1..{self.split})")
            if any(h <= 0 for h in e.hidden):
                raise ConfigError(f"exit hidden sizes must be positive, got {e.hidden}")
        if self.tail_hidden is not None and (
            not isinstance(self.tail_hidden, list) or any(not isinstance(h, int) or h <= 0 for h in self.tail_hidden)
        ):
            raise ConfigError(f"tail_hidden must be a list of positive integers, got {self.tail_hidden}")
        if self.tail_hidden is not None and self.whole_on_device:
            raise ConfigError(
                f"tail_hidden needs a host tail, but split {self.split} puts the whole model on the device"
            )

    def head_position(self, junction: int) -> int:
        """Index into the built head after junction ``junction``'s ReLU."""
        return (1 if self.padded else 0) + 2 * junction

    @property
    def whole_on_device(self) -> bool:
        """Every junction in the head: the final layer's logits answer on the device, nothing is offloaded."""
        return self.split == self.n_junctions

    @property
    def padded(self) -> bool:
        return self.input_size is not None and self.input_size < self.sizes[0]

    @property
    def n_classes(self) -> int:
        return self.sizes[-1]


def _junction(cfg: ModelConfig, j: int) -> nn.Module:
    n_in, n_out = cfg.sizes[j], cfg.sizes[j + 1]
    if cfg.is_sparse(j):
        return SparseLinear(n_in, n_out, cfg.degree(j), seed=cfg.seed + j, pattern=cfg.pattern)
    layer = nn.Linear(n_in, n_out)
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    nn.init.constant_(layer.bias, 0.1)
    return layer


def build_model(cfg: ModelConfig) -> SplitNet:
    """Build the SplitNet a config describes (patterns regenerated from seeds)."""
    cfg.validate()
    head: list[nn.Module] = []
    if cfg.padded:
        head.append(Pad(cfg.input_size, cfg.sizes[0]))  # type: ignore[arg-type]
    for j in range(cfg.split):
        head.append(_junction(cfg, j))
        if j < cfg.n_junctions - 1:  # the final junction's outputs are logits: no ReLU
            head.append(nn.ReLU())
    tail = build_tail(cfg)  # before the exits: the order of initialisation keeps seeded runs reproducible
    exits = []
    for e in cfg.exits:
        widths = [cfg.sizes[e.at], *e.hidden, cfg.n_classes]
        branch: list[nn.Module] = []
        for i in range(len(widths) - 1):
            branch.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                branch.append(nn.ReLU())
        exits.append((cfg.head_position(e.at), nn.Sequential(*branch)))
    model = SplitNet(nn.Sequential(*head), exits, tail)
    model.config = cfg  # type: ignore[attr-defined]
    return model


def build_tail(cfg: ModelConfig) -> nn.Sequential:
    """The host tail a config describes: its junctions after the split, or the dense ``tail_hidden`` MLP."""
    if cfg.tail_hidden is None:
        layers = [_junction(cfg, j) for j in range(cfg.split, cfg.n_junctions)]
    else:
        widths = [cfg.sizes[cfg.split], *cfg.tail_hidden, cfg.n_classes]
        layers = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            layer = nn.Linear(n_in, n_out)
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.constant_(layer.bias, 0.1)
            layers.append(layer)
    tail: list[nn.Module] = []
    for i, layer in enumerate(layers):
        tail.append(layer)
        if i < len(layers) - 1:
            tail.append(nn.ReLU())
    return nn.Sequential(*tail)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters; for SparseLinear these are exactly its edges."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def main_path_parameters(model: SplitNet) -> int:
    """Edges + biases of head and tail (the paper's count; exits excluded)."""
    return count_parameters(model.head) + count_parameters(model.tail)


def paper_config(family: str = "sparse", **overrides: Any) -> ModelConfig:
    """The paper's 2,450-parameter model, with one linear exit at the head output."""
    base: dict[str, Any] = {
        "sparse": dict(sizes=[800, 40, 40, 10], out_degrees=[2, 9, 10]),
        "deep": dict(sizes=[800, 3, 3, 10]),
        "shallow": dict(sizes=[800, 3, 10]),
    }[family]
    d: dict[str, Any] = dict(family=family, split=1, exits=[ExitConfig(at=1)], input_size=784, **base)
    d.update(overrides)
    return ModelConfig.from_dict(d)
