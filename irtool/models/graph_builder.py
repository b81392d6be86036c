"""From symbolic tensors to a model's two views: the layer-level map and the primitive graph.

``map_layers`` follows Keras' ``map_graph``: walk back from the outputs through layer calls
(``_keras_history``), give each call a depth (longest path to an output) and order the
operations by decreasing depth, ties broken by discovery order. This is what
``model.layers`` and ``summary()`` show, so it must match Keras exactly.

``build_graph`` walks back through the primitive records (``producer``) instead and
materializes the ``ir.Graph`` the executor and the ONNX lowering use. Both walks are
iterative, so a 10,000-layer chain needs no recursion limit.
"""

from __future__ import annotations

from collections import defaultdict

from irtool.ir import naming
from irtool.ir.graph import Graph
from irtool.ir.spec import TensorSpec
from irtool.ops.core import Constant, SymbolicTensor
from irtool.ops.variable import Variable


def map_layers(outputs: list, input_calls: dict):
    """Order the layer calls between the inputs and ``outputs`` exactly as Keras does.

    ``input_calls`` maps ``id(tensor)`` of each model input to the call that produces it
    (its InputLayer's, or a stand-in InputLayer's for an intermediate tensor). Returns
    ``(operations, calls_by_depth, op_depth)``.
    """
    order, op_index = _keras_walk(outputs, input_calls)
    call_depth: dict = {}
    op_depth: dict = {}
    for call in reversed(order):
        depth = call_depth.setdefault(call, 0)
        depth = max(depth, op_depth.get(call.operation, 0))
        op_depth[call.operation] = depth
        call_depth[call] = depth
        for parent in _parents(call, input_calls):
            call_depth[parent] = max(depth + 1, call_depth.get(parent, 0))
    for call in input_calls.values():
        if call.operation not in op_depth:
            op_depth[call.operation] = 0
            op_index[call.operation] = -1
            call_depth[call] = 0
    by_depth = defaultdict(list)
    for op, depth in op_depth.items():
        by_depth[depth].append(op)
    operations = []
    for depth in sorted(by_depth, reverse=True):
        operations.extend(sorted(by_depth[depth], key=lambda op: op_index[op]))
    calls_by_depth = defaultdict(list)
    for call, depth in call_depth.items():
        calls_by_depth[depth].append(call)
    return operations, calls_by_depth, op_depth


def _parents(call, input_calls: dict) -> list:
    if call.is_input or call.operation.class_name == "InputLayer":
        return []
    out = []
    for t in call.input_tensors:
        if id(t) in input_calls:
            out.append(input_calls[id(t)])
        elif t._keras_history is not None:
            out.append(t._keras_history[0])
    return out


def _keras_walk(outputs: list, input_calls: dict):
    """Emulate Keras' recursive ``_build_map_helper`` iteratively.

    Returns the calls in post-order and each operation's discovery index.
    """
    finished, order, op_index = set(), [], {}
    for output in outputs:
        root = input_calls.get(id(output))
        if root is None:
            if output._keras_history is None:
                continue
            root = output._keras_history[0]
        if root in finished:
            continue
        op_index.setdefault(root.operation, len(op_index))
        stack = [(root, iter(_parents(root, input_calls)))]
        active = {root}
        while stack:
            call, children = stack[-1]
            for child in children:
                if child in finished:
                    continue
                if child in active:
                    raise ValueError(f"Tensor from operation '{child.operation.name}' is part of a cycle.")
                op_index.setdefault(child.operation, len(op_index))
                active.add(child)
                stack.append((child, iter(_parents(child, input_calls))))
                break
            else:
                stack.pop()
                active.discard(call)
                finished.add(call)
                order.append(call)
    return order, op_index


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
        if t not in graph.nx:
            graph.add_value(t.name, TensorSpec(t.shape, t.dtype), "input", key=t)
    graph.inputs = list(inputs)
    for node in order:
        base = scope_path(node.scope)
        op_name = graph.fresh_op_name(f"{base}/{node.prim.name}" if base else node.prim.name)
        for i, x in enumerate(node.inputs):
            if x in graph.nx:
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


def clone_input_layer_name(tensor: SymbolicTensor) -> str:
    return naming.validate_name(f"{tensor.name}CLONE")
