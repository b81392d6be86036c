"""Shapes computed in the graph from run-time dims: torch.onnx exports with ``dynamic_axes``.

References: PyTorch and ONNX Runtime on the original file at several batch sizes (or sequence
lengths), and ONNX Runtime with ``full_check`` on the re-export.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irtool import importer

from ..harness import run_onnx

torch = pytest.importorskip("torch")


class ViewCNN(torch.nn.Module):
    """``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


class ReshapeMLP(torch.nn.Module):
    """A reshape of a later tensor with the input's batch dim, plus a Mul of dims (folded to -1)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(6, 8)
        self.b = torch.nn.Linear(8, 6)

    def forward(self, x):
        h = torch.relu(self.a(x.reshape(x.shape[0], x.shape[1] * x.shape[2])))
        return self.b(h).reshape(h.shape[0], 3, 2)


def _export(module, x, dynamic_axes) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (torch.from_numpy(x),),
        buffer,
        input_names=["x"],
        dynamo=False,
        opset_version=17,
        dynamic_axes=dynamic_axes,
    )
    return onnx.load_from_string(buffer.getvalue())


def _check(model, proto, xs):
    again = model.to_onnx()
    onnx.checker.check_model(again, full_check=True)
    for x in xs:
        want = run_onnx(proto, {"x": x})
        got = model(x)  # eager: the first axis may be time, not the batch
        got = got if isinstance(got, (list, tuple)) else [got]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, atol=1e-5)
        for g, w in zip(run_onnx(again, {"x": x}), want):
            np.testing.assert_allclose(g, w, atol=1e-5)


@pytest.mark.parametrize("make,shape", [(ViewCNN, (3, 8, 8)), (ReshapeMLP, (2, 3))], ids=["cnn_view", "mlp_reshape"])
def test_dynamic_batch_torch_models(make, shape):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    module = make()
    proto = _export(module, rng.standard_normal((2, *shape)).astype("float32"), {"x": {0: "batch"}})
    assert any(n.op_type == "Shape" for n in proto.graph.node)
    model = importer.load(proto)
    assert model.inputs[0].shape == (None, *shape)
    xs = [rng.standard_normal((n, *shape)).astype("float32") for n in (1, 2, 5)]
    _check(model, proto, xs)
    x = xs[-1]
    np.testing.assert_allclose(model.predict(x, verbose=0), module(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
def test_dynamic_axis_rnn_initial_states_from_the_input_shape(kind, batch_first):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    module = getattr(torch.nn, kind)(4, 5, num_layers=2, bidirectional=True, batch_first=batch_first)
    # Axis 0 is the batch (batch_first) or the time axis; torch builds zero states from the batch dim.
    proto = _export(module, rng.standard_normal((2, 3, 4)).astype("float32"), {"x": {0: "n"}})
    assert any(n.op_type in ("ConstantOfShape", "Expand") for n in proto.graph.node)
    model = importer.load(proto)
    _check(model, proto, [rng.standard_normal((n, 3, 4)).astype("float32") for n in (1, 5)])


def _helper(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto, full_check=True)
    return proto


def test_expand_and_constant_of_shape_with_shapes_from_run_time_dims():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["b1"]),
        helper.make_node("Concat", ["b1", "four"], ["target"], axis=0),
        helper.make_node("Expand", ["row", "target"], ["rows"]),  # (4,) -> (batch, 4)
        helper.make_node("ConstantOfShape", ["target"], ["fill"], value=numpy_helper.from_array(np.array([2.5], "f"))),
        helper.make_node("Mul", ["x", "rows"], ["m"]),
        helper.make_node("Add", ["m", "fill"], ["y"]),
    ]
    inits = [
        ("zero", np.array(0, np.int64)),
        ("axes0", np.array([0], np.int64)),
        ("four", np.array([4], np.int64)),
        ("row", np.array([1.0, -2.0, 0.5, 3.0], "float32")),
    ]
    proto = _helper(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    model = importer.load(proto)
    rng = np.random.default_rng(2)
    _check(model, proto, [rng.standard_normal((n, 4)).astype("float32") for n in (1, 3)])


@pytest.mark.parametrize(
    "nodes,message",
    [
        (
            [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ReduceProd", ["s"], ["p"]),
             helper.make_node("Reshape", ["x", "p"], ["y"])],
            r"ONNX node 'prod' \(ReduceProd\): its input is a shape computed from run-time dims \(\[dim0, dim1\]\)",
        ),
        (
            [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"], name="swap")],
            None,
        ),
    ],
    ids=["reduce_prod", "own_shape"],
)  # fmt: skip
def test_shape_arithmetic_irtool_cannot_express_is_refused(nodes, message):
    for i, node in enumerate(nodes):
        node.name = node.name or ["shape", "prod", "reshape"][i]
    proto = _helper(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "m"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k"] if message else ["n", "m"])],
    )
    if message is None:  # Reshape to its own shape: every entry is its own dim in place, exact
        model = importer.load(proto)
        x = np.arange(6, dtype="float32").reshape(2, 3)
        np.testing.assert_array_equal(np.asarray(model(x)), x)
        return
    with pytest.raises(importer.OnnxImportError, match=message):
        importer.load(proto)


def test_reshape_with_two_unknown_entries_is_refused():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Slice", ["s", "one", "two"], ["d1"], name="slice"),
        helper.make_node("Concat", ["d1", "minus1"], ["target"], axis=0, name="concat"),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    inits = [("one", np.array([1], np.int64)), ("two", np.array([2], np.int64)), ("minus1", np.array([-1], np.int64))]
    proto = _helper(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "m"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])],
        inits,
    )
    with pytest.raises(
        importer.OnnxImportError, match=r"ONNX node 'reshape' \(Reshape\): the target shape \[dim1, -1\]"
    ):
        importer.load(proto)
