"""From symbolic tensors to a model's two views: the layer-level map and the primitive graph.

``map_layers`` follows Keras' ``map_graph``: walk back from the outputs through layer calls
(``_keras_history``), give each call a depth (longest path to an output) and order the
operations by decreasing depth, ties broken by discovery order. This is what
``model.layers`` and ``summary()`` show, so it must match Keras exactly.

The primitive graph itself comes from ``ops.graph_from_trace.build_graph``. Both walks are
iterative, so a 10,000-layer chain needs no recursion limit.
"""

from __future__ import annotations

from collections import defaultdict

from irtool.ir import naming
from irtool.ops.core import SymbolicTensor


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


def clone_input_layer_name(tensor: SymbolicTensor) -> str:
    return naming.validate_name(f"{tensor.name}CLONE")
