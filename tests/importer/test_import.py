"""``irtool.importer.load`` on ONNX files irtool did not write (torch.onnx, onnx.helper) and on its own.

References: PyTorch itself (outputs, and the gradient of one SGD step), ONNX Runtime on the
original file, ``onnx.checker`` full_check on the re-export.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irtool
from irtool import importer, layers

from ..harness import run_onnx

torch = pytest.importorskip("torch")


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2, groups=2)
        self.pool = torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.fc = torch.nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = self.pool(torch.nn.functional.leaky_relu(self.conv2(x), 0.1))
        return torch.softmax(self.fc(torch.flatten(x, 1)), -1)


def _export(module, x, **kwargs) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        module, torch.from_numpy(x), buffer, input_names=["image"], output_names=["probs"], dynamo=False, **kwargs
    )
    return onnx.load_from_string(buffer.getvalue())


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype("float32")
    module = SmallCNN().eval()
    return module, x, _export(module, x, opset_version=17)


def test_torch_cnn_imports_one_layer_per_node_and_predicts(cnn):
    module, x, proto = cnn
    model = importer.load(proto)
    onnx_names = [n.name.strip("/").replace("/", ".") for n in proto.graph.node]
    assert [layer.name for layer in model.layers[1:]] == onnx_names
    assert [type(layer).__name__ for layer in model.layers[1:]] == [n.op_type for n in proto.graph.node]
    want = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-6)
    assert model.count_params() == sum(p.numel() for p in module.parameters())


def test_torch_cnn_exports_back_with_parity(cnn):
    module, x, proto = cnn
    model = importer.load(proto)
    again = model.to_onnx()
    onnx.checker.check_model(again, full_check=True)
    assert [i.name for i in again.graph.input] == ["image"] and [o.name for o in again.graph.output] == ["probs"]
    # Same computation node for node, bar Flatten, which irtool writes as a Reshape.
    ops = [n.op_type for n in proto.graph.node]
    assert [n.op_type for n in again.graph.node] == ["Reshape" if op == "Flatten" else op for op in ops]
    np.testing.assert_allclose(run_onnx(again, {"image": x})[0], run_onnx(proto, {"image": x})[0], atol=1e-6)


def test_submodel_by_onnx_tensor_name(cnn):
    module, x, proto = cnn
    model = importer.load(proto)
    relu = next(n for n in proto.graph.node if n.op_type == "Relu")
    sub = model.submodel(relu.output[0])
    want = torch.relu(module.conv1(torch.from_numpy(x))).detach().numpy()
    np.testing.assert_allclose(sub.predict(x, verbose=0), want, atol=1e-6)
    with pytest.raises(KeyError, match="No tensor named 'nope'"):
        model.tensor("nope")


def test_fine_tune_one_step_matches_torch_sgd(cnn):
    module, x, proto = cnn
    model = importer.load(proto)
    y = np.eye(5, dtype="float32")[[1, 3]]
    model.compile(optimizer=irtool.optimizers.SGD(learning_rate=0.5), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)

    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    probs = module(torch.from_numpy(x))
    loss = -(torch.from_numpy(y) * torch.log(probs)).sum(-1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ours = {w.path: w.numpy() for w in model.trainable_weights}
    fc = model.get_layer("fc.Gemm")
    np.testing.assert_allclose(fc.weights[0].numpy(), module.fc.weight.detach().numpy().T, atol=1e-5)
    np.testing.assert_allclose(fc.weights[1].numpy(), module.fc.bias.detach().numpy(), atol=1e-5)
    conv = model.get_layer("conv1.Conv").weights[0].numpy()
    np.testing.assert_allclose(conv, module.conv1.weight.detach().numpy().transpose(2, 3, 1, 0), atol=1e-5)
    assert len(ours) == 6
    # The re-export carries the fine-tuned weights.
    want = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(run_onnx(model.to_onnx(), {"image": x})[0], want, atol=1e-5)


def _helper_model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _value(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_helper_graph_with_explicit_pads_ceil_mode_and_gemm_attributes():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 3)).astype("float32")
    wt = rng.standard_normal((4, 2, 3, 3)).astype("float32")
    g = rng.standard_normal((6, 2 * 4 * 4)).astype("float32")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[2, 0, 1, 1], strides=[2, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node(
            "AveragePool",
            ["r"],
            ["p"],
            name="pool",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
            ceil_mode=1,
        ),
        helper.make_node(
            "ConvTranspose", ["p", "wt"], ["u"], name="up", strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0]
        ),
        helper.make_node("MaxPool", ["u"], ["m"], name="max", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Slice", ["m", "starts", "ends", "axes"], ["s"], name="slice"),
        helper.make_node("Reshape", ["s", "shape"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g", "bias"], ["y"], name="gemm", transB=1, alpha=0.5, beta=2.0),
        helper.make_node("HardSigmoid", ["y"], ["out"], name="hs", alpha=0.3, beta=0.4),
    ]
    inits = [
        ("w", w), ("wt", wt), ("g", g), ("bias", rng.standard_normal(6).astype("float32")),
        ("starts", np.array([0, 1], np.int64)), ("ends", np.array([4, 5], np.int64)), ("axes", np.array([2, 3], np.int64)),
        ("shape", np.array([0, -1], np.int64)),
    ]  # fmt: skip
    proto = _helper_model(nodes, [_value("x", [3, 3, 11, 12])], [_value("out", [3, 6])], inits)
    x = rng.standard_normal((3, 3, 11, 12)).astype("float32")
    model = importer.load(proto)
    want = run_onnx(proto, {"x": x})[0]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-5)
    again = model.to_onnx()
    onnx.checker.check_model(again, full_check=True)
    np.testing.assert_allclose(run_onnx(again, {"x": x})[0], want, atol=1e-5)


def test_old_opsets_are_upgraded_first():
    nodes = [
        helper.make_node("Softmax", ["x"], ["s"], name="softmax", axis=1),
        helper.make_node("Unsqueeze", ["s"], ["y"], name="unsq", axes=[0]),
    ]
    proto = _helper_model(nodes, [_value("x", [2, 5])], [_value("y", [1, 2, 5])], opset=11)
    x = np.random.default_rng(2).standard_normal((2, 5)).astype("float32")
    model = importer.load(proto)
    np.testing.assert_allclose(model.predict(x, verbose=0), run_onnx(proto, {"x": x})[0], atol=1e-6)


def test_unsupported_ops_are_listed_in_one_error_with_counts():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("NonZero", ["a"], ["b"]),
        helper.make_node("NonZero", ["a"], ["c"]),
        helper.make_node("FusedConv", ["a"], ["d"], domain="com.microsoft"),
        helper.make_node("Det", ["a"], ["e"]),
    ]
    graph = helper.make_graph(nodes, "g", [_value("x", [2, 2])], [_value(n, None) for n in "bcde"])
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    with pytest.raises(importer.UnsupportedOpsError) as caught:
        importer.load(proto)
    message = str(caught.value)
    assert "3 unsupported ONNX op types: Det (1), NonZero (2), com.microsoft::FusedConv (1)" in message
    assert caught.value.counts == {"Det": 1, "NonZero": 2, "com.microsoft::FusedConv": 1}


def test_round_trip_irtool_export_import_export_is_the_same_graph():
    inputs = irtool.Input((12, 12, 3), name="pixels")
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax", name="head")(layers.Dense(8, activation="gelu")(x))
    original = irtool.Model(inputs, outputs)
    first = original.to_onnx()
    model = importer.load(first)
    second = model.to_onnx()
    onnx.checker.check_model(second, full_check=True)
    assert [n.op_type for n in second.graph.node] == [n.op_type for n in first.graph.node]
    assert [o.name for o in second.graph.output] == [o.name for o in first.graph.output] == ["head"]
    x = np.random.default_rng(3).standard_normal((2, 12, 12, 3)).astype("float32")
    want = original.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-5)
    np.testing.assert_allclose(run_onnx(second, {"pixels": x})[0], want, atol=1e-5)


def test_save_as_keras_is_refused_and_the_fine_tuned_weights_travel_as_weights_or_onnx(cnn, tmp_path):
    module, x, proto = cnn
    model = importer.load(proto)
    model.compile(optimizer=irtool.optimizers.SGD(learning_rate=0.5), loss="categorical_crossentropy")
    model.fit(x, np.eye(5, dtype="float32")[[1, 3]], epochs=1, verbose=0)
    tuned = model.predict(x, verbose=0)
    assert not np.allclose(tuned, module(torch.from_numpy(x)).detach().numpy(), atol=1e-4)
    with pytest.raises(NotImplementedError, match="Cannot save the imported ONNX model 'main_graph' to .*m.keras"):
        model.save(tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []
    model.save_weights(tmp_path / "tuned.weights.h5")
    again = importer.load(proto)
    again.load_weights(tmp_path / "tuned.weights.h5")
    np.testing.assert_array_equal(again.predict(x, verbose=0), tuned)
    model.export(tmp_path / "tuned.onnx")
    np.testing.assert_allclose(importer.load(tmp_path / "tuned.onnx").predict(x, verbose=0), tuned, atol=1e-6)


def _one_node_model(node, inputs, output, initializers=()):
    graph = helper.make_graph([node], "g", inputs, [output])
    graph.initializer.extend(initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_integer_div_rounds_toward_zero_as_onnx_does_and_exports_back():
    """ONNX's Div on integers truncates; the importer used floor division, which differs on negative
    quotients (-7 / 2: -3, not -4), and wrote that into the re-export."""
    proto = _one_node_model(
        helper.make_node("Div", ["x", "d"], ["y"]),
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["n"])],
        helper.make_tensor_value_info("y", TensorProto.INT64, ["n"]),
        [numpy_helper.from_array(np.array([2, -2, 3, 5], np.int64), "d")],
    )
    x = np.array([[-7, -7, 7, -10], [7, 7, -3, 10], [6, -6, 0, -1]], np.int64)
    model = importer.load(proto)
    for row in x:
        want = run_onnx(proto, {"x": row})[0]
        assert want.tolist() == [int(a / b) for a, b in zip(row, [2, -2, 3, 5])]
        assert model.predict(row, verbose=0).tolist() == want.tolist()
        assert run_onnx(irtool.onnx.to_onnx(model), {"x": row})[0].tolist() == want.tolist()


def test_expand_of_a_dynamic_batch_to_a_static_target():
    """torch's ``x.unsqueeze(1).expand(-1, 2, -1)`` exported with a dynamic batch: Expand((B, 1, 4),
    [1, 2, 1]); a target 1 keeps the unknown dim, so the result is (B, 2, 4)."""
    proto = _one_node_model(
        helper.make_node("Expand", ["x", "shape"], ["y"]),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1, 4])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2, 4]),
        [numpy_helper.from_array(np.array([1, 2, 1], np.int64), "shape")],
    )
    model = importer.load(proto)
    assert tuple(model.outputs[0].shape) == (None, 2, 4)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 1, 4)).astype("float32")
        np.testing.assert_array_equal(model.predict(x, verbose=0), run_onnx(proto, {"x": x})[0])
