"""Lowering irtool graphs (a model's, a subgraph, a cut) to ONNX, and cutting ONNX models (``extract``)."""

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
from irtool.onnx.extraction import Cut, CutPoint, ExtractError, cut_points, extract, extract_cut
from irtool.onnx.onnx_cut import EXTRACTED_FROM, save_cut

__all__ = [
    "DEFAULT_OPSET",
    "EXTRACTED_FROM",
    "Cut",
    "CutPoint",
    "ExportError",
    "ExtractError",
    "LoweringError",
    "default_opset",
    "export_onnx",
    "cut_points",
    "extract",
    "extract_cut",
    "lower",
    "save_cut",
    "save_onnx",
    "to_onnx",
    "validate",
]
