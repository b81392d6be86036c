"""What an ONNX file declares, read without running it: the facts a user looks up in Netron before serving.

``describe(proto)`` returns a ``ModelReport``: inputs and outputs with their symbolic dims, the IR
version, opsets, producer, metadata properties, how many nodes of each op type the graph has
(subgraphs of ``If``/``Loop``/``Scan`` included) and how many parameters its initializers hold
(counted from their declared dims, so external data is never read).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import onnx

from irtool.runtime.ort import TensorInfo, graph_io


@dataclass(frozen=True)
class ModelReport:
    """An ONNX model's declarations (see the module docstring)."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ir_version: int
    opsets: dict[str, int]
    producer: str
    producer_version: str
    graph_name: str
    metadata: dict[str, str]
    op_counts: dict[str, int]
    parameters: int
    initializers: int


def _subgraphs(node: onnx.NodeProto):
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _walk(graph: onnx.GraphProto, ops: Counter, initializers: list) -> None:
    initializers.extend(graph.initializer)
    for node in graph.node:
        ops[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"] += 1
        for subgraph in _subgraphs(node):
            _walk(subgraph, ops, initializers)


def describe(proto: onnx.ModelProto) -> ModelReport:
    """The ``ModelReport`` of ``proto`` (its weights may be external: only their dims are read)."""
    inputs, outputs = graph_io(proto)
    ops: Counter = Counter()
    initializers: list = []
    _walk(proto.graph, ops, initializers)
    return ModelReport(
        inputs=inputs,
        outputs=outputs,
        ir_version=int(proto.ir_version),
        opsets={o.domain or "ai.onnx": int(o.version) for o in proto.opset_import},
        producer=proto.producer_name,
        producer_version=proto.producer_version,
        graph_name=proto.graph.name,
        metadata={p.key: p.value for p in proto.metadata_props},
        op_counts=dict(sorted(ops.items(), key=lambda item: (-item[1], item[0]))),
        parameters=sum(math.prod(t.dims) for t in initializers),
        initializers=len(initializers),
    )


__all__ = ["ModelReport", "describe"]
