"""A small typed IR of the head and its early exits (what the device runs)."""

from mcuflow.ir.graph import ExitBranch, Graph, Linear, Pad, Relu
from mcuflow.ir.packed import PackedWeights
from mcuflow.ir.quantized import QExit, QLinear, QModel

__all__ = ["ExitBranch", "Graph", "Linear", "PackedWeights", "Pad", "QExit", "QLinear", "QModel", "Relu"]
