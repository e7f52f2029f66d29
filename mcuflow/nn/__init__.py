"""PyTorch side of mcuflow: predefined-sparse layers and split early-exit networks."""

from mcuflow.nn.config import (
    ExitConfig,
    ModelConfig,
    build_model,
    count_parameters,
    main_path_parameters,
    paper_config,
)
from mcuflow.nn.conv import SparseConv1d, SparseConv2d
from mcuflow.nn.sparse import Pad, SparseLinear
from mcuflow.nn.split import SplitNet

__all__ = [
    "ExitConfig",
    "ModelConfig",
    "Pad",
    "SparseConv1d",
    "SparseConv2d",
    "SparseLinear",
    "SplitNet",
    "build_model",
    "count_parameters",
    "main_path_parameters",
    "paper_config",
]
