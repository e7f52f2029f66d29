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
    scratch_bytes: int = 0  # bytes of the shared scratch buffer this kernel uses (0: none)
    bias: np.ndarray | None = None  # int32 per row as the device adds it, when it differs from the layer's
    n_x: int = 0  # index_free: inputs read in place, columns past them padding of weight 0 (0: all n_in)
    runs: tuple[tuple[int, int], ...] = ()  # index_free without straddling rows: (rows, first window) per run
    shift_gt32: bool = False  # every row's rshift >= 33 (the short requantisation)
    rshift: np.ndarray | None = None  # uint8 per row as the device stores it (shift_gt32: rshift - 33)

    @property
    def reads_unpadded(self) -> bool:
        """The kernel reads the unpadded input in place: the run needs no padded copy of it."""
        return self.n_x > 0 and self.scratch_bytes > 0
