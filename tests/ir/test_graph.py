"""The graph IR: invariants (lint), readable printing, and what the graph records."""

import networkx as nx
import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops
from irtool.ir.spec import TensorSpec, broadcast_shapes


def small_model():
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(3, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, layers.add([hidden, hidden * 2.0]))


def test_graph_records_ops_values_and_scopes():
    model = small_model()
    graph = model.graph
    graph.lint()
    assert isinstance(graph.nx, nx.MultiDiGraph)
    names = [graph.name(op) for op in graph.ops]
    assert names == ["hidden/matmul", "hidden/add", "hidden/relu", "multiply/multiply", "add/add"]
    assert [graph.name(v) for v in graph.values("weight")] == ["hidden/kernel", "hidden/bias"]
    assert len(graph.values("const")) == 1 and [graph.name(v) for v in graph.values("input")] == ["x"]
    scope = graph.nx.nodes[graph.ops[0]]["scope"]
    assert scope[0].operation is model.get_layer("hidden") and scope[0].index == 0
    assert [graph.name(v) for v in graph.op_inputs(graph.ops[-1])] == ["hidden/relu", "multiply/multiply"]


def test_graph_prints_one_op_per_line_with_shapes():
    text = str(small_model().graph)
    lines = text.splitlines()
    assert lines[0] == "graph(" and lines[1] == "    %x: float32[?, 4],"
    assert "    %hidden/matmul: float32[?, 3] = matmul(%x, @hidden/kernel)  # hidden/matmul" in lines
    assert any(line.strip().startswith("return %") for line in lines)
    assert repr(small_model().graph) == "<Graph: 1 inputs, 5 ops, 1 outputs>"


def test_lint_catches_broken_invariants():
    model = small_model()
    graph = model.graph
    graph.ops.reverse()
    with pytest.raises(ValueError, match="not topological"):
        graph.lint()
    graph.ops.reverse()
    graph.nx.nodes[graph.ops[0]]["name"] = graph.name(graph.ops[1])
    with pytest.raises(ValueError, match="is used by two ops"):
        graph.lint()

    model = small_model()
    graph = model.graph
    first_out = graph.op_outputs(graph.ops[0])[0]
    graph.nx.nodes[first_out]["spec"] = TensorSpec((None, 5), "float32")
    with pytest.raises(ValueError, match="its rule infers"):
        graph.lint()

    model = small_model()
    graph = model.graph
    weight = graph.values("weight")[0]
    graph.nx.add_edge(graph.ops[0], weight, port=1)
    with pytest.raises(ValueError, match="(producers|cycle)"):
        graph.lint()

    model = small_model()
    graph = model.graph
    graph.ops.pop()
    with pytest.raises(ValueError, match="does not list every op"):
        graph.lint()


def test_graph_is_shared_by_submodels_and_ancestors():
    inputs = keras.Input((4,))
    a = layers.Dense(3, name="a")(inputs)
    b = layers.Dense(2, name="b")(a)
    full = keras.Model(inputs, b)
    part = keras.Model(inputs, a)
    assert len(part.graph.ops) == 2 and len(full.graph.ops) == 4
    upstream = full.graph.ancestors([a])
    assert all(v in upstream for v in part.graph.values())


def test_broadcast_shapes():
    assert broadcast_shapes((None, 1, 4), (3, 1)) == (None, 3, 4)
    assert broadcast_shapes((None,), (5,)) == (5,)
    with pytest.raises(ValueError, match="Cannot broadcast"):
        broadcast_shapes((2, 3), (4,))


def test_shape_errors_inside_layers_name_the_layer():
    class Broken(layers.Layer):
        def call(self, inputs):
            return ops.matmul(inputs, np.ones((5, 2), "float32"))

    with pytest.raises(ValueError) as info:
        Broken(name="broken")(keras.Input((3,)))
    message = str(info.value)
    assert "Broken.call()" in message and "'broken'" in message
    assert "x1.shape=(None, 3), x2.shape=(5, 2)" in message
