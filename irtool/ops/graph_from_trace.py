"""From tracing records to the graph IR: ``build_graph`` walks back through the primitive records
(``SymbolicTensor.producer``) from some outputs to some inputs and materializes the ``ir.Graph``
that the executor, the trainer and the ONNX lowering use. The walk is iterative, so a
10,000-layer chain needs no recursion limit. After it, nothing reads the tracing records: the
graph holds the primitives, attributes, scopes, specs, weights and constants.
"""

from __future__ import annotations

from irtool.ir.graph import Graph
from irtool.ir.spec import TensorSpec
from irtool.ops.core import Constant, SymbolicTensor
from irtool.ops.variable import Variable


def scope_path(scope: tuple) -> str:
    parts = []
    for call in scope:
        name = call.operation.name
        parts.append(name if call.index == 0 else f"{name}_call{call.index}")
    return "/".join(parts)


def build_graph(inputs: list, outputs: list, output_paths: list) -> Graph:
    """Materialize the primitive graph between ``inputs`` and ``outputs``.

    Raises Keras' ``Output with path `p` is not connected to `inputs` `` when an output
    depends on a tensor that is neither computed nor among the inputs.
    """
    graph = Graph()
    input_set = set(map(id, inputs))
    order: list = []
    visited: set = set()
    for output, path in zip(outputs, output_paths):
        if id(output) in input_set:
            continue
        if output.producer is None:
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`")
        stack = [(output.producer, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node in visited:
                continue
            visited.add(node)
            stack.append((node, True))
            for x in reversed(node.inputs):
                if not isinstance(x, SymbolicTensor) or id(x) in input_set:
                    continue
                if x.producer is None:
                    raise ValueError(f"Output with path `{path}` is not connected to `inputs`")
                if x.producer not in visited:
                    stack.append((x.producer, False))

    for t in inputs:
        if t not in graph:
            graph.add_value(t.name, TensorSpec(t.shape, t.dtype), "input", key=t)
    graph.inputs = list(inputs)
    for node in order:
        base = scope_path(node.scope)
        op_name = graph.fresh_op_name(f"{base}/{node.prim.name}" if base else node.prim.name)
        for i, x in enumerate(node.inputs):
            if x in graph:
                continue
            if isinstance(x, Variable):
                graph.add_value(x.path, TensorSpec(x.shape, x.dtype), "weight", x, key=x)
            elif isinstance(x, Constant):
                graph.add_value(f"{op_name}/const{i}", TensorSpec(x.shape, x.dtype), "const", x.value, key=x)
            else:
                raise AssertionError(f"unexpected operand {x!r}")
        specs = [TensorSpec(t.shape, t.dtype) for t in node.outputs]
        graph.add_op(
            node.prim,
            node.attrs,
            node.inputs,
            op_name,
            node.scope,
            output_specs=specs,
            output_keys=node.outputs,
            key=node,
        )
    graph.outputs = list(outputs)
    return graph
