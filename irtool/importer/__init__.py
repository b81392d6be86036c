"""Importing ONNX into irtool: ``irtool.importer.load(path)`` gives a model with one layer per ONNX node.

It lives above ``models`` (it builds a ``Functional``), so it cannot be ``irtool.onnx.load``:
``irtool.onnx`` sits below ``models`` in the layer contract (see ARCHITECTURE.md).
"""

from irtool.importer.imported_model import ImportedModel
from irtool.importer.node_layer import OnnxNode
from irtool.importer.reader import (
    MIN_OPSET,
    UnsupportedOpsError,
    load,
    supported_ops,
    unsupported_ops,
)
from irtool.importer.registry import OnnxImportError

SUPPORTED_OPS = supported_ops()

__all__ = [
    "MIN_OPSET",
    "SUPPORTED_OPS",
    "ImportedModel",
    "OnnxImportError",
    "OnnxNode",
    "UnsupportedOpsError",
    "load",
    "supported_ops",
    "unsupported_ops",
]
