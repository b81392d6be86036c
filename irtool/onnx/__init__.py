"""Lowering irtool graphs (a model's, a subgraph, a cut) to ONNX."""

from irtool.onnx.context import LoweringError
from irtool.onnx.export import (
    DEFAULT_OPSET,
    ExportError,
    default_opset,
    export_onnx,
    lower,
    save_onnx,
    to_onnx,
    validate,
)

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "LoweringError",
    "default_opset",
    "export_onnx",
    "lower",
    "save_onnx",
    "to_onnx",
    "validate",
]
