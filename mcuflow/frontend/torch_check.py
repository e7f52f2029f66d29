"""Does the lowered float graph compute what the torch model computes? Checked module by module.

Export runs the lowered graph (``Graph`` nodes, float64 numpy) and the torch model (float32) on the
calibration inputs and compares, in order, every head module's output that the graph holds, every
exit's branch and the tail. The first that differs is named.

The tolerance is relative to each compared tensor's largest magnitude: ``RTOL = 1e-3``. Float32
rounding, even accumulated over the longest dot products here and with a BatchNorm folded in float64
while torch applies it in float32, stays near 1e-6 of that scale (measured: at most 3e-7 on the
shipped checkpoints and the test models), over three orders of magnitude below. And 1e-3 of a
tensor's largest magnitude is at most 0.26 of one int8 step of the range it is quantised to
(range / 255, the range being at least that magnitude), so a difference the check lets through
moves a quantised value no more than rounding would. A wrong lowering (a layer dropped, a BatchNorm
folded with the wrong statistics, dropout left scaling) moves values by percents.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mcuflow.errors import ConfigError
from mcuflow.frontend.layout import Layout
from mcuflow.frontend.torch_conv import to_ir_order
from mcuflow.frontend.torch_frontend import LoweredChain, LoweredModel
from mcuflow.ir.graph import run_node

RTOL = 1e-3


class LoweringMismatchError(ConfigError):
    """The compiled graph does not compute what the torch model does."""


def _gap(t: torch.Tensor, z: np.ndarray, layout: Layout) -> tuple[float, float] | None:
    """(largest difference, scale) when ``t`` and ``z`` differ beyond the tolerance, else None.

    ``t`` is brought into the IR's order first (feature maps: NCHW -> HWC-flat)."""
    a = to_ir_order(t.detach().cpu().double(), layout).numpy()
    if a.shape != z.shape:
        return float("inf"), 0.0
    diff = float(np.abs(a - z).max(initial=0.0))
    scale = float(max(np.abs(a).max(initial=0.0), np.abs(z).max(initial=0.0)))
    if not np.isfinite(diff) or diff > RTOL * scale:
        return diff, scale
    return None


def _chain(
    chain: LoweredChain, t: torch.Tensor, z: np.ndarray, on_module: Callable[[int, torch.Tensor], None] | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """Run the torch modules and the IR nodes of ``chain`` side by side from (``t``, ``z``); the outputs.

    Raises :class:`LoweringMismatchError` at the first module whose output the graph holds and differs."""
    values = [z]
    for node in chain.nodes:
        values.append(run_node(node, values[-1]))
    for i, ((path, module), end) in enumerate(zip(chain.modules, chain.ends, strict=True)):
        t = module(t)
        if end is not None and (gap := _gap(t, values[end], chain.layouts[i])) is not None:
            diff, scale = gap
            raise LoweringMismatchError(
                f"the compiled graph differs from the model at {path} ({type(module).__name__}): "
                f"max |difference| {diff:.3g} against values up to {scale:.3g} (more than {RTOL:g} of them) "
                "on the calibration inputs; its lowering does not compute what torch does"
            )
        if on_module is not None:
            on_module(i, t)
    return t, values[-1]


def check_lowering(model, lowered: LoweredModel, inputs: np.ndarray) -> None:
    """Refuse, naming the first module that differs, a graph that does not compute what ``model`` does on ``inputs``
    (``(N, input_len)`` floats): head outputs, every exit's logits, the tail's logits."""
    x = np.asarray(inputs, dtype=np.float64)
    head_t: dict[int, torch.Tensor] = {}

    def keep(i: int, t: torch.Tensor) -> None:
        head_t[i + 1] = t.clone()  # the value after head[: i + 1] the exits there read (before any in-place ReLU)

    was_training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            h_t, h_z = _chain(lowered.head, torch.from_numpy(x.astype(np.float32)), x, keep)
            head_z = [x]
            for node in lowered.graph.head:
                head_z.append(run_node(node, head_z[-1]))
            for e, (at, chain) in enumerate(zip(model.exit_points, lowered.exits, strict=True)):
                position = lowered.graph.exits[e].at
                _chain(chain, head_t[at], head_z[position])
            if not lowered.whole_on_device:  # the final exit reads the head output, already compared
                _chain(lowered.tail, h_t, h_z)
    finally:
        for m, training in was_training:
            m.training = training
