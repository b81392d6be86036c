"""Lowering irtool graphs (a model's, a subgraph, a cut) to ONNX, and cutting ONNX models (``extract``).

Cutting stands on onnx-ir, whose import (sympy's, through it) takes 0.3-0.5 s, a third of
``import irtool``: the cutting names are loaded on first use (``__getattr__`` below), so importing
irtool, exporting and the commands that never cut do not pay for it.
"""

import importlib

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

_CUTTING = {
    **dict.fromkeys(("Cut", "CutPoint", "ExtractError", "cut_points", "extract", "extract_cut"), "extraction"),
    **dict.fromkeys(("EXTRACTED_FROM", "save_cut"), "onnx_cut"),
}

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


def __getattr__(name: str):
    module = _CUTTING.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return value
