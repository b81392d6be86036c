"""Functional API semantics, checked against Keras 3's documented behaviour (research/keras.md §1)."""

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity

RNG = np.random.default_rng(0)


def data(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


# -- Input -------------------------------------------------------------------------------------


def test_input_shapes_dtypes_and_names():
    assert keras.Input((32,)).shape == (None, 32)
    assert keras.Input((32,), batch_size=4).shape == (4, 32)
    assert keras.Input(batch_shape=(None, None, 3)).shape == (None, None, 3)
    assert keras.Input(shape=()).shape == (None,)
    assert keras.Input((2,)).dtype == "float32"
    assert keras.Input((2,), dtype="int32").dtype == "int32"
    assert keras.Input((2,), dtype=np.float64).dtype == "float64"
    keras.backend.clear_session()
    x = keras.Input((3,))
    assert x.name == "keras_tensor"
    assert x._keras_history[0].operation.name == "input_layer"
    assert keras.Input((3,)).name == "keras_tensor_1"
    named = keras.Input((3,), name="img")
    assert named.name == "img" and named._keras_history[0].operation.name == "img"
    assert repr(named) == "<KerasTensor shape=(None, 3), dtype=float32, sparse=False, ragged=False, name=img>"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": (3,), "batch_shape": (None, 3)}, "You cannot pass both `shape` and `batch_shape` at the same time."),
        ({"batch_size": 2, "batch_shape": (None, 3)}, "You cannot pass both `batch_size` and `batch_shape`"),
        ({}, "You must pass a `shape` argument."),
        ({"shape": (3,), "sparse": True}, "`sparse=True` is not supported"),
    ],
)
def test_input_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        keras.Input(**kwargs)


def test_symbolic_tensor_protocol():
    x = keras.Input((3,))
    with pytest.raises(TypeError, match="cannot be used as a boolean"):
        bool(x)
    with pytest.raises(ValueError, match="symbolic"):
        np.asarray(x)
    assert (x == x) is True and (x == keras.Input((3,))) is False
    assert {x: 1}[x] == 1
    assert x.ndim == 2


# -- Model construction ----------------------------------------------------------------------------


def mnist_model():
    inputs = keras.Input(shape=(784,), name="img")
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")


def test_model_is_functional_with_keras_names_and_counts():
    model = mnist_model()
    assert type(model).__name__ == "Functional" and isinstance(model, keras.Model)
    assert [layer.name for layer in model.layers] == ["img", "dense", "dense_1", "dense_2"]
    assert model.count_params() == 55050
    assert [w.path for w in model.weights][:2] == ["dense/kernel", "dense/bias"]
    assert model.get_layer(index=1).name == "dense"
    assert keras.Model(model.input, model.output).name == "functional"
    assert keras.Model(model.input, model.output).name == "functional_1"


def test_layers_order_matches_keras():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    model = keras.Model([a, b], layers.Add()([layers.Dense(4, name="da")(a), b]))
    assert [layer.name for layer in model.layers] == ["a", "da", "b", "add"]
    d1, d2, d3 = (layers.Dense(3, name=n) for n in ("d1", "d2", "d3"))
    model = keras.Model([a, b], d3(d2(d1(a))))
    assert [layer.name for layer in model.layers] == ["a", "d1", "d2", "b", "d3"]


def test_disconnected_outputs_name_their_path():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    ya, yb = layers.Dense(2)(a), layers.Dense(2)(b)
    with pytest.raises(ValueError, match=r"Output with path `` is not connected to `inputs`"):
        keras.Model(a, yb)
    with pytest.raises(ValueError, match=r"Output with path `1` is not connected to `inputs`"):
        keras.Model(a, [ya, yb])
    with pytest.raises(ValueError, match=r"Output with path `y` is not connected to `inputs`"):
        keras.Model(a, {"x": ya, "y": yb})
    h1 = layers.Dense(3)(a)
    h3 = layers.Dense(3)(h1)
    with pytest.raises(ValueError, match="not connected"):
        keras.Model(h3, h1)


def test_invalid_inputs_and_outputs():
    a = keras.Input((4,))
    with pytest.raises(ValueError, match="All `inputs` values must be KerasTensors"):
        keras.Model([a, np.zeros(3)], a)
    with pytest.raises(ValueError, match="All `outputs` values must be KerasTensors"):
        keras.Model(a, [np.zeros(3)])
    with pytest.raises(ValueError, match="`inputs` argument cannot be empty"):
        keras.Model([], a)


def test_duplicate_names_are_rejected():
    a = keras.Input((4,))
    x = layers.Dense(2, name="z")(a)
    y = layers.Dense(2, name="z")(x)
    with pytest.raises(ValueError, match='The name "z" is used 2 times in the model'):
        keras.Model(a, y)


def test_identity_model_and_unused_inputs():
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    model = keras.Model(a, a)
    x = data(3, 2)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert_onnx_parity(model, x)
    model = keras.Model([a, b], layers.Dense(2)(a))
    assert len(model.inputs) == 2
    assert model.predict([x, x], verbose=0).shape == (3, 2)


def test_structures_lists_dicts_and_output_names():
    a = keras.Input((2,), name="a")
    h1 = layers.Dense(3, name="h1")(a)
    h3 = layers.Dense(1, name="h3")(h1)
    model = keras.Model({"a": a}, {"b": h3, "a": h1})
    assert model.output_names == ["h1", "h3"]  # sorted-key flattening
    assert model.output_shape == {"b": (None, 1), "a": (None, 3)}
    out = model.predict({"a": data(5, 2)}, verbose=0)
    assert set(out) == {"a", "b"} and out["b"].shape == (5, 1)
    assert keras.Model(a, [h3, h3]).output_names == ["h3", "h3"]
    single = keras.Model([a], [h3])
    assert isinstance(single.input, list) and single.input_shape == (None, 2)
    assert single.predict(data(2, 2), verbose=0).shape == (2, 1)  # 1-element list unwrapped
    with pytest.warns(UserWarning, match="must match the names"):
        keras.Model({"x": a}, h3)


def test_get_layer_errors():
    model = mnist_model()
    with pytest.raises(ValueError, match="Provide only a layer name or a layer index"):
        model.get_layer("dense", 1)
    with pytest.raises(ValueError, match="Was asked to retrieve layer at index 10 but model only has 4 layers."):
        model.get_layer(index=10)
    with pytest.raises(ValueError, match=r"No such layer: nope. Existing layers are: \['img', 'dense'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="Provide either a layer name or layer index"):
        model.get_layer()
    with pytest.raises(AttributeError, match="reserved"):
        model.layers = []


def test_multi_input_multi_output_model_runs_and_exports():
    title = keras.Input(shape=(8,), name="title")
    body = keras.Input(shape=(16,), name="body")
    tags = keras.Input(shape=(4,), name="tags")
    x = layers.concatenate([layers.Dense(8)(title), layers.Dense(8)(body), tags])
    priority = layers.Dense(1, name="priority")(x)
    department = layers.Dense(4, activation="softmax", name="department")(x)
    model = keras.Model([title, body, tags], [priority, department])
    feeds = [data(3, 8), data(3, 16), data(3, 4)]
    out = model.predict(feeds, verbose=0)
    assert [o.shape for o in out] == [(3, 1), (3, 4)]
    by_name = model.predict({"title": feeds[0], "body": feeds[1], "tags": feeds[2]}, verbose=0)
    np.testing.assert_allclose(by_name[1], out[1])
    proto = assert_onnx_parity(model, feeds)
    assert [i.name for i in proto.graph.input] == ["title", "body", "tags"]
    assert [o.name for o in proto.graph.output] == ["priority", "department"]


# -- Sharing, nesting, submodels ---------------------------------------------------------------------


def test_shared_layer_stores_weights_once():
    shared = layers.Dense(2, name="shared")
    x1, x2 = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([x1, x2], layers.add([shared(x1), shared(x2)]))
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert len(model.weights) == 2
    assert shared.input is x1 and len(shared._inbound_nodes) == 2
    a, b = data(3, 4), data(3, 4)
    kernel, bias = shared.get_weights()
    np.testing.assert_allclose(model.predict([a, b], verbose=0), a @ kernel + b @ kernel + 2 * bias, rtol=1e-5)
    proto = assert_onnx_parity(model, [a, b])
    assert len(proto.graph.initializer) == 2


def test_nested_models_and_ensembles():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, layers.Dense(3, name="inner_dense")(inner_in), name="inner")
    calls_before = len(inner.get_layer("inner_dense")._inbound_nodes)
    x = keras.Input((4,))
    y = inner(x)
    z = inner(layers.Dense(4)(y))
    outer = keras.Model(x, z)
    assert [layer.name for layer in outer.layers] == ["input_layer_1", "inner", "dense"]
    assert len(inner.get_layer("inner_dense")._inbound_nodes) == calls_before  # inner layers get no new calls
    assert outer.count_params() == 15 + 16
    outer.graph.lint()
    x_val = data(2, 4)
    expected = inner.predict(outer.get_layer("dense")(inner.predict(x_val, verbose=0)), verbose=0)
    np.testing.assert_allclose(outer.predict(x_val, verbose=0), expected, rtol=1e-5)
    assert_onnx_parity(outer, x_val)
    # Ensemble: several models on one input, averaged.
    members = [keras.Model(inner_in, layers.Dense(1)(inner_in)) for _ in range(3)]
    e_in = keras.Input((4,))
    ensemble = keras.Model(e_in, layers.average([m(e_in) for m in members]))
    want = np.mean([m.predict(x_val, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(x_val, verbose=0), want, rtol=1e-5)
    assert_onnx_parity(ensemble, x_val)


def test_nested_model_output_is_its_own_tensor():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, layers.Dense(3)(inner_in), name="sub")
    x = keras.Input((4,))
    big = keras.Model(x, layers.Dense(1)(inner(x)))
    with pytest.raises(ValueError, match="not connected"):
        keras.Model(big.input, big.get_layer("sub").output)


def test_submodels_share_weights():
    model = mnist_model()
    features = keras.Model(model.input, [layer.output for layer in model.layers])
    x = data(2, 784)
    outs = features.predict(x, verbose=0)
    assert [o.shape for o in outs] == [(2, 784), (2, 64), (2, 64), (2, 10)]
    np.testing.assert_allclose(outs[-1], model.predict(x, verbose=0), rtol=1e-6)
    middle = keras.Model(model.input, model.get_layer("dense_1").output)
    assert middle.get_layer("dense_1") is model.get_layer("dense_1")
    model.get_layer("dense_1").set_weights([np.zeros((64, 64)), np.ones(64)])
    np.testing.assert_array_equal(middle.predict(x, verbose=0), np.ones((2, 64)))
    assert_onnx_parity(features, x)


def test_model_from_intermediate_tensor_gets_a_clone_input():
    inputs = keras.Input((3,))
    h1 = layers.Dense(4, name="dense1")(inputs)
    h2 = layers.Dense(4, name="dense2")(h1)
    h3 = layers.Dense(2, name="dense3")(h2)
    tail = keras.Model(h2, h3)
    assert [type(layer).__name__ for layer in tail.layers] == ["InputLayer", "Dense"]
    assert tail.layers[0].name == f"{h2.name}CLONE"
    mid = keras.Model(h1, h3)
    assert [layer.name for layer in mid.layers][1:] == ["dense2", "dense3"]
    x = data(2, 4)
    w2, b2 = mid.get_layer("dense2").get_weights()
    w3, b3 = mid.get_layer("dense3").get_weights()
    np.testing.assert_allclose(mid.predict(x, verbose=0), (x @ w2 + b2) @ w3 + b3, rtol=1e-5)


# -- Raw ops -----------------------------------------------------------------------------------------


def test_raw_ops_become_named_operations_not_layers():
    x = keras.Input((4,))
    w = np.ones((4, 2), "float32")
    y = ops.matmul(x[:, 0:4], w) * 2.0 + 1
    model = keras.Model(x, ops.relu(y))
    names = [op.name for op in model.operations]
    assert names == ["input_layer", "get_item", "matmul", "multiply", "add", "relu"]
    assert [op.class_name for op in model.operations][1:] == ["GetItem", "Matmul", "Multiply", "Add", "Relu"]
    assert [layer.name for layer in model.layers] == ["input_layer"]
    v = data(3, 4)
    np.testing.assert_allclose(model.predict(v, verbose=0), np.maximum(v @ w * 2 + 1, 0), rtol=1e-6)
    assert_onnx_parity(model, v)


# -- Layers: introspection and weights ------------------------------------------------------------------


def test_weights_are_variables_with_keras_attributes():
    dense = layers.Dense(3)
    dense.build((None, 2))
    kernel = dense.weights[0]
    assert (kernel.name, kernel.path, kernel.shape, kernel.dtype, kernel.trainable) == (
        "kernel",
        "dense/kernel",
        (2, 3),
        "float32",
        True,
    )
    kernel.assign(np.ones((2, 3)))
    np.testing.assert_array_equal(kernel.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(ops.convert_to_numpy(kernel), np.ones((2, 3)))
    np.testing.assert_array_equal(ops.convert_to_numpy(np.ones(2)), np.ones(2))
    with pytest.raises(ValueError, match="must match"):
        kernel.assign(np.ones((3, 3)))
    dense.trainable = False
    assert dense.trainable_weights == [] and len(dense.non_trainable_weights) == 2


def test_set_weights_errors_and_round_trip():
    model = mnist_model()
    with pytest.raises(ValueError, match="with a weight list of length 1, but the layer was expecting 6 weights"):
        model.set_weights([np.ones(1)])
    with pytest.raises(ValueError, match=r"weight shape \(784, 64\) is not compatible with provided weight shape"):
        model.get_layer("dense").set_weights([np.ones((3, 3)), np.ones(64)])
    other = mnist_model()
    other.set_weights(model.get_weights())
    x = data(2, 784)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_layer_input_output_and_errors():
    dense = layers.Dense(3)
    with pytest.raises(AttributeError, match="has never been called and thus has no defined input"):
        _ = dense.input
    with pytest.raises(AttributeError, match="no defined output"):
        _ = dense.output
    with pytest.raises(ValueError, match="isn't built"):
        dense.count_params()
    x = keras.Input((2,))
    y = dense(x)
    assert dense.input is x and dense.output is y
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        dense(keras.Input((5,)))
    with pytest.raises(ValueError, match="expected min_ndim=2"):
        layers.Dense(2)(keras.Input(shape=()))


def test_auto_names_and_clear_session():
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    assert layers.Activation("relu").name == "activation"
    keras.backend.clear_session()
    assert layers.Dense(1).name == "dense"
    layers.Dense(1, name="dense_9")
    assert layers.Dense(1).name == "dense_1"  # explicit names don't advance the counter
    with pytest.raises(ValueError, match="cannot contain character `/`"):
        layers.Dense(1, name="a/b")


def test_eager_layer_calls_return_numpy():
    dense = layers.Dense(3, activation="relu")
    x = data(4, 2)
    y = dense(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(y, np.maximum(x @ kernel + bias, 0), rtol=1e-6)
    assert dense(x.astype("float64")).dtype == np.float32  # autocast to the layer dtype
    model = mnist_model()
    assert isinstance(model(data(2, 784)), np.ndarray)


def test_model_input_shape_errors():
    model = mnist_model()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 784\), found shape=\(1, 3\)"):
        model.predict(np.ones((1, 3)), verbose=0)
    with pytest.raises(ValueError, match="expects 1 input"):
        model.predict([np.ones((1, 784)), np.ones((1, 784))], verbose=0)


def test_predict_batches_and_matches_single_call():
    model = mnist_model()
    x = data(100, 784)
    np.testing.assert_allclose(model.predict(x, batch_size=7, verbose=0), model(x), rtol=1e-5, atol=1e-5)


def test_predict_refuses_inputs_of_different_sample_counts():
    """As Keras: two inputs with 3 and 4 samples are ambiguous, and predict says so before running."""
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a, b], layers.Add()([a, b]))
    with pytest.raises(ValueError, match=r"Data cardinality is ambiguous.*\[3, 4\]"):
        model.predict([np.ones((3, 2)), np.ones((4, 2))], verbose=0)
    assert model.predict([np.ones((3, 2)), np.ones((3, 2))], verbose=0).shape == (3, 2)


def test_feeds_are_converted_to_each_inputs_dtype_or_used_as_they_are():
    """``_feeds`` uses an ndarray of the input's dtype as it is (no copy) and converts anything else;
    a float64 array for a string input is checked like any other feed (NumPy says a float64 dtype
    equals None, the dtype ``_feeds`` keeps for strings)."""
    a, b = keras.Input((2,), name="a", dtype="int64"), keras.Input((2,), name="b", dtype="string")
    model = keras.Model([a, b], [a, b])
    ints, text = np.array([[1, 2]]), np.array([["x", "y"]], dtype=object)
    fed_ints, fed_text = model._flatten_feeds([ints, text])
    assert fed_ints is ints and fed_text.tolist() == [["x", "y"]]
    fed_ints, _ = model._flatten_feeds([np.array([[1.0, 2.0]]), text])
    assert fed_ints.dtype == np.int64 and fed_ints.tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="Input 1 with name 'b' .* expects string values, received ndarray float64"):
        model._flatten_feeds([ints, np.array([[1.5, 2.0]])])


def test_initializers_are_seeded():
    keras.utils.set_random_seed(7)
    a = layers.Dense(5)
    a.build((None, 3))
    keras.utils.set_random_seed(7)
    b = layers.Dense(5)
    b.build((None, 3))
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    limit = np.sqrt(6 / (3 + 5))
    assert np.abs(a.get_weights()[0]).max() <= limit and not a.get_weights()[1].any()


def test_ten_thousand_layer_chain_builds_runs_and_exports():
    x = inputs = keras.Input((2,))
    for _ in range(10_000):
        x = layers.Dense(2)(x)
    model = keras.Model(inputs, x)
    assert len(model.layers) == 10_001
    assert model.predict(np.ones((1, 2), "float32"), verbose=0).shape == (1, 2)
    proto = keras.onnx.to_onnx(model)
    assert len(proto.graph.node) == 10_000  # one Gemm per Dense
