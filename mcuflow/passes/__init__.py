"""Named passes over the IR: fuse_relu -> quantize -> choose_formats -> plan_memory."""

from mcuflow.passes.formats import choose_formats, pack
from mcuflow.passes.fuse import fuse_relu
from mcuflow.passes.memory import MemoryPlan, plan_memory, schedule
from mcuflow.passes.quantize import quantize

__all__ = ["MemoryPlan", "choose_formats", "fuse_relu", "pack", "plan_memory", "quantize", "schedule"]
