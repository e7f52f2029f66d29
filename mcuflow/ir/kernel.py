"""How the generated code runs one layer: the library kernel and the constants it is called with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KernelPlan:
    """What the generated code passes to the library for one layer (``mcuflow_fc_t``, kernels README)."""

    function: str
    weights: np.ndarray  # int8, flat, in the order the kernel reads them
    degree: int  # weights per row: n_in for dense, the in-degree otherwise
    col_bytes: int = 0
    row_ptr_bytes: int = 0
    p: int = 0
    s: int = 0  # pass shift, reduced mod n_in
    pass_step: int = 0
    perm_m: int = 0
    perm_delta: int = 0
    w_aligned: bool = False
    x_aligned: bool = False
    unroll: bool = False
    scratch_entries: int = 0  # int16 entries of the shared scratch buffer this kernel uses (0: none)
