"""Activation layers with arguments (ReLU, LeakyReLU, PReLU, ELU, Softmax): closed forms, ONNX."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(12)
X = (RNG.standard_normal((4, 3, 5)) * 3).astype("float32")
X[0, 0, :3] = [0.0, 0.5, 6.0]  # values at the threshold / max_value edges


def relu_ref(x, max_value=None, negative_slope=0.0, threshold=0.0):
    x = x.astype("float64")
    pos = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        pos = np.minimum(pos, max_value)
    return pos + negative_slope * np.minimum(x - threshold, 0.0)


def run(layer, x, shape=None, ops_expected=None):
    inputs = keras.Input(shape or x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    got = model.predict(x, verbose=0)
    proto = assert_onnx_parity(model, x)
    assert_onnx_parity(model, x, opset=13)
    if ops_expected is not None:
        assert [n.op_type for n in proto.graph.node] == ops_expected
    return got


@pytest.mark.parametrize(
    "kwargs, nodes",
    [
        ({}, ["Relu"]),
        ({"max_value": 6.0}, ["Clip"]),
        ({"max_value": 2.5}, ["Relu", "Clip"]),
        ({"negative_slope": 0.1}, ["LeakyRelu"]),
        ({"threshold": 0.5}, ["Greater", "Where"]),
        ({"max_value": 4.0, "negative_slope": 0.2, "threshold": 0.5}, None),
        ({"max_value": 3.0, "negative_slope": 0.3}, None),
    ],
)
def test_relu(kwargs, nodes):
    got = run(layers.ReLU(**kwargs), X, ops_expected=nodes)
    np.testing.assert_allclose(got, relu_ref(X, **kwargs), rtol=1e-6, atol=1e-6)


def test_relu_config_and_errors():
    layer = layers.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5)
    assert layer.name.startswith("re_lu")
    config = layer.get_config()
    assert {k: config[k] for k in ("max_value", "negative_slope", "threshold")} == {
        "max_value": 2.0,
        "negative_slope": 0.1,
        "threshold": 0.5,
    }
    assert layers.ReLU.from_config(config).get_config() == config
    for kwargs, match in [
        ({"max_value": -1.0}, "max_value"),
        ({"negative_slope": -0.1}, "negative_slope"),
        ({"threshold": None}, "threshold"),
    ]:
        with pytest.raises(ValueError, match=match):
            layers.ReLU(**kwargs)


def test_leaky_relu():
    got = run(layers.LeakyReLU(), X, ops_expected=["LeakyRelu"])  # alpha=0.3, not ONNX's 0.01
    np.testing.assert_allclose(got, np.where(X >= 0, X, 0.3 * X), rtol=1e-6)
    got = run(layers.LeakyReLU(negative_slope=0.05), X)
    np.testing.assert_allclose(got, np.where(X >= 0, X, 0.05 * X), rtol=1e-6)
    with pytest.warns(UserWarning, match="`alpha` is deprecated"):
        assert layers.LeakyReLU(alpha=0.2).get_config()["negative_slope"] == 0.2
    with pytest.raises(ValueError, match="cannot be None or negative"):
        layers.LeakyReLU(-1)


@pytest.mark.parametrize(
    "kwargs, shape, alpha_shape",
    [
        ({}, (3, 5), (3, 5)),
        ({"shared_axes": [1]}, (3, 5), (1, 5)),
        ({"shared_axes": 2}, (3, 5), (3, 1)),
        ({"shared_axes": [1, 2]}, (3, 5), (1, 1)),
        ({"shared_axes": [1]}, (None, 5), (1, 5)),
    ],
)
def test_prelu(kwargs, shape, alpha_shape):
    layer = layers.PReLU(**kwargs)
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    assert layer.alpha.shape == alpha_shape and layer.alpha.name == "alpha"
    assert not layer.alpha.numpy().any()  # alpha_initializer="Zeros"
    alpha = RNG.standard_normal(alpha_shape).astype("float32")
    layer.set_weights([alpha])
    for steps in (3, 6) if None in shape else (3,):
        x = (RNG.standard_normal((2, steps, 5)) * 2).astype("float32")
        np.testing.assert_allclose(model.predict(x, verbose=0), np.where(x < 0, alpha * x, x), rtol=1e-6)
        proto = assert_onnx_parity(model, x)
        assert [n.op_type for n in proto.graph.node] == ["PRelu"]


def test_prelu_float64_config_and_errors():
    layer = layers.PReLU(alpha_initializer="ones", dtype="float64")
    inputs = keras.Input((4,), dtype="float64")
    model = keras.Model(inputs, layer(inputs))
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(model.predict(x, verbose=0), x)
    assert_onnx_parity(model, x)  # ONNX Runtime has no float64 PRelu: lowered to Where
    config = layers.PReLU(shared_axes=1).get_config()
    assert config["shared_axes"] == [1] and config["alpha_initializer"]["class_name"] == "Zeros"
    with pytest.raises(ValueError, match="expected axis 2 of input shape to have value 4"):
        shared = layers.PReLU(shared_axes=[1])
        shared(keras.Input((3, 4)))
        shared(keras.Input((5, 5)))
    with pytest.raises(ValueError, match="Share the dynamic axes"):
        layers.PReLU()(keras.Input((None, 4)))


@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.0])
def test_elu(alpha):
    got = run(layers.ELU(alpha=alpha), X, ops_expected=["Elu"])
    np.testing.assert_allclose(got, np.where(X > 0, X, alpha * np.expm1(X.astype("float64"))), rtol=1e-5, atol=1e-6)
    assert layers.ELU(alpha).get_config()["alpha"] == alpha


def softmax_ref(x, axis):
    e = np.exp(x.astype("float64") - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 1, (1, 2), [2]])
def test_softmax(axis):
    got = run(layers.Softmax(axis=axis), X)
    ref_axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    np.testing.assert_allclose(got, softmax_ref(X, ref_axis), rtol=1e-5, atol=1e-7)
    assert layers.Softmax(axis=axis).get_config()["axis"] == axis


@pytest.mark.parametrize("mask_dtype", ["bool", "float32"])
def test_softmax_with_mask_argument(mask_dtype):
    scores, mask = keras.Input((3, 5)), keras.Input((1, 5), dtype=mask_dtype)
    model = keras.Model([scores, mask], layers.Softmax()(scores, mask=mask))
    m = RNG.random((4, 1, 5)) > 0.4
    m[0] = False  # a fully masked row: all zeros, as in Keras
    feeds = [X, m.astype(mask_dtype)]
    want = softmax_ref(np.where(m, X, -1e9), -1) * m
    np.testing.assert_allclose(model.predict(feeds, verbose=0), want, rtol=1e-5, atol=1e-7)
    assert_onnx_parity(model, feeds)
    with pytest.raises(ValueError, match="must be broadcastable"):
        layers.Softmax()(scores, mask=keras.Input((3, 4), dtype="bool"))


def test_softmax_uses_the_keras_mask_and_dynamic_length():
    tokens = keras.Input((None,), dtype="int32")
    logits = layers.Embedding(5, 1, mask_zero=True)(tokens)
    probs = layers.Softmax(axis=1)(layers.Lambda(lambda t: t[..., 0], mask=lambda t, m: m)(logits))
    model = keras.Model(tokens, probs)
    (table,) = model.get_weights()
    for steps in (3, 6):
        ids = RNG.integers(0, 5, (2, steps)).astype("int32")
        ids[:, 0] = 1
        got = model.predict(ids, verbose=0)
        keep = ids != 0
        np.testing.assert_allclose(got, softmax_ref(np.where(keep, table[ids, 0], -1e9), 1) * keep, rtol=1e-5)
        assert_onnx_parity(model, ids)


def test_activation_layers_pass_masks():
    tokens = keras.Input((4,), dtype="int32")
    x = layers.Embedding(6, 3, mask_zero=True)(tokens)
    for layer in (layers.ReLU(), layers.LeakyReLU(), layers.PReLU(), layers.ELU()):
        x = layer(x)
        assert x._keras_mask is not None


HARNESS_CASES = [
    ("ReLU", {"max_value": 6.0}, (3, 5)),
    ("LeakyReLU", {"negative_slope": 0.1}, (3, 5)),
    ("PReLU", {}, (3, 5)),
    ("ELU", {"alpha": 0.4}, (3, 5)),
    ("Softmax", {"axis": 1}, (3, 5)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
