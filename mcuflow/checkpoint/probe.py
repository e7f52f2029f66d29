"""Does a reloaded model compute what the saved one did? Both run on the same probe inputs, module by module.

The reloaded model is built from the same module types with the same tensors, so it repeats the same
float32 operations: the tolerance only absorbs what a BLAS may reorder (1e-5 of each tensor's largest
magnitude, about a hundred float32 roundings). Whatever the layer list could not carry (a hook, a
subclass's own ``forward``) changes values by far more, and is named by where it first shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from mcuflow.errors import ConfigError
from mcuflow.nn.split import SplitNet

PROBE_SAMPLES = 64
RTOL = 1e-5


def probe_inputs(width: int, n: int = PROBE_SAMPLES) -> torch.Tensor:
    """Inputs in [0, 1] (what mcuflow feeds a model), the extremes included; the global RNG is left alone."""
    x = torch.rand(n, width, generator=torch.Generator().manual_seed(0))
    x[0], x[1] = 0.0, 1.0
    return x


@contextmanager
def _inference(*models: nn.Module) -> Iterator[None]:
    """Evaluation mode (dropout off, BatchNorm on its running statistics), each module's flag restored after."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return True
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return not torch.equal(a, b)
    scale = float(torch.maximum(a.abs().max(), b.abs().max())) if a.numel() else 0.0
    return bool((a - b).abs().max() > RTOL * scale) if a.numel() else False


def _run(module: nn.Module, x: torch.Tensor, where: str):
    """``module(x)``; a model that cannot even run on vectors of its input width is refused by the failing module."""
    try:
        return module(x)
    except Exception as err:  # noqa: BLE001 - whatever the user's module raises, say where in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"{where} ({type(module).__name__}) fails on inputs of shape {tuple(x.shape)}: {first[:200]}"
        ) from None


def first_difference(original: SplitNet, reloaded: SplitNet, width: int) -> str | None:
    """Where ``reloaded`` first computes something else than ``original`` on the probe inputs, or None."""
    params = [*original.parameters(), *original.buffers()]
    x = probe_inputs(width).to(params[0].device if params else "cpu")
    with _inference(original, reloaded):
        ha, hb = x, x.clone()
        for i, (ma, mb) in enumerate(zip(original.head, reloaded.head, strict=True)):
            ha, hb = _run(ma, ha, f"head.{i}"), mb(hb)
            if _differ(ha, hb):
                return f"head.{i} ({type(ma).__name__})"
            for e, at in enumerate(original.exit_points):
                if at == i + 1 and _differ(_run(original.exits[e], ha, f"exits.{e}"), reloaded.exits[e](hb)):
                    return f"exits.{e} ({type(original.exits[e]).__name__})"
        for i, (ma, mb) in enumerate(zip(original.tail, reloaded.tail, strict=True)):
            ha, hb = _run(ma, ha, f"tail.{i}"), mb(hb)
            if _differ(ha, hb):
                return f"tail.{i} ({type(ma).__name__})"
        (ea, fa), (eb, fb) = _run(original, x, "the model"), reloaded(x.clone())
        if _differ(fa, fb) or any(_differ(a, b) for a, b in zip(ea, eb, strict=True)):
            return f"the forward of {type(original).__name__}"  # a subclass computing something else
    return None
