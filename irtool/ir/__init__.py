"""The graph IR: ``Graph`` (records, read and edit API, ``lint``), tensor specs, and the NumPy
executor that runs a graph. Knows nothing of layers or ONNX."""

from irtool.ir.executor import CompiledGraph
from irtool.ir.graph import Graph, Key, Op, Value
from irtool.ir.spec import TensorSpec

__all__ = ["CompiledGraph", "Graph", "Key", "Op", "TensorSpec", "Value"]
