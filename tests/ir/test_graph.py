"""The graph IR: invariants (lint), readable printing, and what the graph records."""

import networkx as nx
import numpy as np
import onnx
import pytest

import irtool
import irtool as keras
from irtool import layers, ops
from irtool.ir.executor import CompiledGraph
from irtool.ir.spec import TensorSpec, broadcast_shapes
from irtool.ops.elementwise import MULTIPLY
from irtool.ops.fusion import fuse_matmul_add, fuse_relu

from ..conftest import run_onnx


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


# -- the read and edit API, and passes written on it ------------------------------------------------


def mlp():
    inputs = keras.Input((4,), name="x")
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, layers.Dense(3, name="head")(hidden))


def test_read_api_gives_typed_records():
    graph = mlp().graph
    matmul, add, relu = graph.ops[:3]
    op = graph.op(matmul)
    assert (op.name, op.prim.name, op.scope[0].operation.name) == ("hidden/matmul", "matmul", "hidden")
    x, kernel = op.inputs
    assert graph.value(kernel).kind == "weight" and graph.value(kernel).payload.path == "hidden/kernel"
    assert graph.value(x).spec == TensorSpec((None, 4), "float32") and graph.producer(x) is None
    (product,) = op.outputs
    assert graph.producer(product) is matmul and graph.consumers(product) == [add] and graph.uses(product) == 1
    assert graph.constant_array(kernel) is graph.value(kernel).payload._value
    assert product in graph and graph.is_op(matmul) and not graph.is_op(product)


def test_edit_api_keeps_the_invariants():
    model = mlp()
    graph = model.graph.copy()
    relu = graph.ops[2]
    (relu_out,) = graph.op_outputs(relu)
    # Insert `relu_out * 2` before the head and make the head read it.
    two = graph.add_value("two", TensorSpec((), "float32"), "const", np.float32(2.0))
    (doubled,) = graph.add_op(MULTIPLY, {}, [relu_out, two], "double", before=graph.ops[3])
    head_matmul = graph.ops[4]
    graph.replace_uses(relu_out, doubled)
    assert graph.op_inputs(head_matmul)[0] is doubled and graph.op_inputs(graph.ops[3])[0] is relu_out
    graph.lint()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    hidden = keras.Model(model.input, model.get_layer("hidden").output).predict(x, verbose=0)
    head = model.get_layer("head")
    expected = (2 * hidden) @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(CompiledGraph(graph).run([x])[0], expected, rtol=1e-5, atol=1e-6)
    assert len(model.graph.ops) == 5  # the copy is independent
    model.graph.lint()

    # Rewire back, then the doubling is dead: remove_unused drops it and its constant.
    graph.replace_uses(doubled, relu_out)
    graph.remove_unused()
    graph.lint()
    assert [graph.name(op) for op in graph.ops] == [graph.name(op) for op in model.graph.ops]
    assert "two" not in [graph.name(v) for v in graph.values()]
    with pytest.raises(ValueError, match="still used"):
        graph.remove_op(graph.ops[0])


def test_subgraph_is_a_cut_that_lowers_and_runs():
    model = mlp()
    graph = model.graph
    hidden = graph.op_outputs(graph.ops[2])[0]
    cut = graph.subgraph([hidden], graph.outputs)
    cut.lint()
    assert [cut.name(v) for v in cut.inputs] == ["hidden/relu"] and len(cut.ops) == 2
    proto = irtool.onnx.lower(cut, name="head_only")
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["Gemm"] and proto.graph.input[0].name == "hidden/relu"
    h = np.random.default_rng(1).standard_normal((3, 8)).astype("float32")
    (got,) = run_onnx(proto, {"hidden/relu": h})
    np.testing.assert_allclose(got, CompiledGraph(cut).run([h])[0], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="not computed from the given inputs"):
        graph.subgraph([], graph.outputs)


def test_fuse_matmul_add_is_exact_and_selective():
    model = mlp()
    fused = fuse_matmul_add(model.graph)
    fused.lint()
    assert [fused.prim(op).name for op in fused.ops] == ["matmul_add", "relu", "matmul_add"]
    x = np.random.default_rng(2).standard_normal((6, 4)).astype("float32")
    np.testing.assert_allclose(CompiledGraph(fused).run([x])[0], model.predict(x, verbose=0), rtol=1e-6)
    assert fused.outputs[0] is model.graph.outputs[0]  # the add's value keeps its key
    # A product that is also an output (or read twice) stays a matmul.
    inputs = keras.Input((4,))
    product = ops.matmul(inputs, np.ones((4, 2), "float32"))
    both = keras.Model(inputs, [product, product + np.ones(2, "float32")])
    assert [both.graph.prim(op).name for op in fuse_matmul_add(both.graph).ops] == ["matmul", "add"]


def test_fuse_relu_into_matmul_add_is_exact_and_leaves_inputs_and_weights_alone():
    model = mlp()
    base = fuse_matmul_add(model.graph)
    fused = fuse_relu(base)
    fused.lint()
    assert [(fused.prim(op).name, fused.op(op).attrs) for op in fused.ops] == [
        ("matmul_add", {"activation": "relu"}),
        ("matmul_add", {}),
    ]
    assert [base.prim(op).name for op in base.ops] == ["matmul_add", "relu", "matmul_add"]  # a copy
    rng = np.random.default_rng(3)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 4)).astype("float32")
        kept = x.copy()
        weights = [w.copy() for w in model.get_weights()]
        got = CompiledGraph(fused).run([x])[0]
        # The reference: the unfused graph, run op by op with NumPy's own matmul and maximum.
        kernel, bias, head, head_bias = weights
        want = np.maximum(x @ kernel + bias, 0) @ head + head_bias
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(x, kept)  # the in-place ReLU writes only the op's own buffer
        for before, after in zip(weights, model.get_weights()):
            np.testing.assert_array_equal(before, after)
    # The executor binds the bias as a (1, m) view, so an in-place weight update reaches it.
    compiled = CompiledGraph(fused)
    model.layers[1].bias.assign(np.full(8, 100.0, "float32"))
    x = rng.standard_normal((2, 4)).astype("float32")
    kernel, bias, head, head_bias = model.get_weights()
    np.testing.assert_allclose(compiled.run([x])[0], np.maximum(x @ kernel + bias, 0) @ head + head_bias, rtol=1e-5)
    # A sum that is also a graph output (or read twice) keeps its relu separate.
    inputs = keras.Input((4,))
    total = layers.Dense(2)(inputs)
    both = keras.Model(inputs, [total, ops.relu(total)])
    names = [both.inference_graph.prim(op).name for op in fuse_relu(both.inference_graph).ops]
    assert names == ["matmul_add", "relu"]


def test_fuse_relu_into_conv_runs_trains_and_exports_as_the_unfused_graph():
    # conv + relu becomes one conv(activation="relu") for the executor and the trainer; its forward,
    # its gradients (the ReLU's mask folded into the conv's vjp) and its lowering match the pair's.
    from irtool.onnx import lower
    from irtool.train.autodiff import GradientProgram

    inputs = keras.Input((7, 7, 3))
    h = layers.Conv2D(4, 3, activation="relu")(inputs)
    kept = layers.Conv2D(4, 3)(h)
    model = keras.Model(inputs, [layers.Conv2D(2, 3, activation="relu", padding="same")(kept), ops.relu(kept)])
    fused = fuse_relu(model.graph)
    fused.lint()
    # The second conv's output is also read by the model's other output branch: it keeps its relu apart.
    assert [(fused.prim(op).name, fused.op(op).attrs.get("activation")) for op in fused.ops] == [
        ("conv", "relu"), ("conv", None), ("conv", "relu"), ("relu", None),
    ]  # fmt: skip
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 7, 7, 3)).astype("float32")
    for got, want in zip(CompiledGraph(fused).run([x]), CompiledGraph(model.graph).run([x])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    loss_inputs = keras.Input((7, 7, 3))
    loss = ops.sum(ops.square(model(loss_inputs)[0])) + ops.sum(model(loss_inputs)[1])
    loss_graph = keras.Model(loss_inputs, loss).graph
    weights = model.trainable_weights
    (y_fused,), g_fused = GradientProgram(fuse_relu(loss_graph), weights, training=True).run([x])
    (y_plain,), g_plain = GradientProgram(loss_graph, weights, training=True).run([x])
    np.testing.assert_allclose(y_fused, y_plain, rtol=1e-5)
    for a, b in zip(g_fused, g_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Lowered on its own, the fused op is a Conv then a Relu, and ONNX Runtime agrees.
    import onnxruntime as ort

    proto = lower(fused)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = session.run(None, {session.get_inputs()[0].name: x})
    for got, want in zip(outs, CompiledGraph(model.graph).run([x])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
