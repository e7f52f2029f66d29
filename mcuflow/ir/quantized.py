"""The quantised IR: what the C library and the numpy reference both execute.

Arithmetic of a layer (TFLite int8 style, zero points folded into the bias):

    acc[r]  = bias[r] + sum_k w[r, k] * x[columns[r, k]]          (int32, never overflows: checked at export)
    y[r]    = clamp(((acc[r] * mult[r] + 2**(rshift[r]-1)) >> rshift[r]) + out_zp, act_min, act_max)

with ``bias[r] = round(b / (s_in * s_w[r])) - in_zp * sum_k w[r, k]`` and the real multiplier
``s_in * s_w[r] / s_out = mult[r] * 2**-rshift[r]``; ``>>`` is an arithmetic shift of an int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mcuflow.ir.graph import Shape
from mcuflow.ir.kernel import KernelPlan
from mcuflow.ir.packed import PackedWeights

if TYPE_CHECKING:
    from mcuflow.ir.memory import MemoryPlan


@dataclass
class QLinear:
    name: str
    n_in: int
    n_out: int
    weight: np.ndarray  # int8 (n_out, d)
    columns: np.ndarray  # int64 (n_out, d)
    bias: np.ndarray  # int32 (n_out,), zero point folded in
    mult: np.ndarray  # int32 (n_out,), Q31 in [2**30, 2**31)
    rshift: np.ndarray  # uint8 (n_out,), 1..62
    in_scale: float
    in_zp: int
    w_scale: np.ndarray  # float64 (n_out,)
    out_scale: float
    out_zp: int
    act_min: int
    act_max: int
    relu: bool
    pattern: str
    params: object | None = None  # StructuredParams for the structured pattern
    packed: PackedWeights | None = None
    kernel: KernelPlan | None = None  # set by passes.plan_kernels
    saturated_biases: int = 0

    @property
    def kind(self) -> str:
        return "linear"

    @property
    def degree(self) -> int:
        return int(self.columns.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.columns.size)


@dataclass
class QExit:
    """An exit branch reading the head after ``at`` head layers, and its integer decision."""

    name: str
    at: int
    layers: list[QLinear]
    lut: np.ndarray  # uint16 (256,): round(32768 * exp(-d * logit_scale))
    threshold_q15: int


@dataclass
class QModel:
    name: str
    model_hash: str
    input_len: int
    padded_len: int
    input_scale: float
    input_zp: int
    head: list[QLinear]
    exits: list[QExit]
    num_classes: int
    exit_threshold: float
    per_channel: bool
    calibration_samples: int
    source: str = "torch"
    small_ram: bool = False  # no kernel scratch buffer (passes.plan_kernels)
    input_source: str = "calibration range"  # where the input scale and zero point came from
    raw_to_input: str = ""  # how raw data becomes the model's inputs, as text, when known
    plan: MemoryPlan | None = None  # set by passes.plan_memory
    notes: list[str] = field(default_factory=list)
    input_shape: Shape | None = None  # a feature-map input (h, w, c), HWC-flattened

    @property
    def intermediate_shape(self) -> Shape:
        """The offloaded tensor's shape: the head output's feature map, ``1 x 1 x n`` for a vector."""
        out = getattr(self.head[-1], "out_shape", None) if self.head else self.input_shape
        return out or Shape(1, 1, self.intermediate_len)

    @property
    def intermediate(self) -> QLinear:
        return self.head[-1]

    @property
    def intermediate_len(self) -> int:
        return self.head[-1].n_out if self.head else self.padded_len

    @property
    def intermediate_scale(self) -> float:
        return self.head[-1].out_scale if self.head else self.input_scale

    @property
    def intermediate_zp(self) -> int:
        return self.head[-1].out_zp if self.head else self.input_zp

    def all_layers(self) -> list[QLinear]:
        return [*self.head, *(layer for e in self.exits for layer in e.layers)]
