"""Named passes over the IR: fuse_relu -> quantize -> choose_formats -> plan_kernels -> plan_memory
(and resolve_link for the OFFLOAD compression)."""

from mcuflow.passes.formats import choose_formats, pack
from mcuflow.passes.fuse import fuse_relu
from mcuflow.passes.kernels import plan_kernels
from mcuflow.passes.memory import plan_memory, schedule
from mcuflow.passes.quantize import quantize

__all__ = ["choose_formats", "fuse_relu", "pack", "plan_kernels", "plan_memory", "quantize", "schedule"]
