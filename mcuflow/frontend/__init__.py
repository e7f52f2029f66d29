"""Front ends: a SplitNet (or checkpoint) or an ONNX file -> the float IR (``mcuflow.ir.Graph``)."""

from mcuflow.frontend.onnx_frontend import graph_from_onnx
from mcuflow.frontend.torch_frontend import graph_from_model, lower_model

__all__ = ["graph_from_model", "graph_from_onnx", "lower_model"]
