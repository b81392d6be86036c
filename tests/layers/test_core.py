"""The layers of the foundation issue: shapes, closed-form values, errors and ONNX parity."""

import math

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(3)
X = RNG.standard_normal((4, 6)).astype("float32")
ERF = np.vectorize(math.erf)

ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "gelu": lambda x: 0.5 * x * (1 + ERF(x / np.sqrt(2))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "exponential": np.exp,
    "linear": lambda x: x,
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "relu6": lambda x: np.clip(x, 0, 6),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_layer_matches_closed_form_and_onnx(name):
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layers.Activation(name)(inputs))
    want = ACTIVATIONS[name](X.astype("float64"))
    np.testing.assert_allclose(model.predict(X, verbose=0), want, rtol=1e-5, atol=1e-6)
    assert_onnx_parity(model, X)
    for opset in (17, 21):
        assert_onnx_parity(model, X, opset=opset)


def test_dense_activation_argument_and_config():
    dense = layers.Dense(3, activation="gelu", use_bias=False, name="d")
    model = keras.Model(inputs := keras.Input((6,)), dense(inputs))
    assert len(dense.weights) == 1
    (kernel,) = dense.get_weights()
    np.testing.assert_allclose(model.predict(X, verbose=0), ACTIVATIONS["gelu"](X @ kernel), rtol=1e-5, atol=1e-6)
    config = dense.get_config()
    assert config["units"] == 3 and config["activation"] == "gelu" and config["use_bias"] is False
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert layers.Dense.from_config(config).get_config()["units"] == 3
    with pytest.raises(ValueError, match="expected a positive integer"):
        layers.Dense(0)
    assert_onnx_parity(model, X)


def test_dense_on_rank_3_acts_on_last_axis():
    inputs = keras.Input((5, 6))
    dense = layers.Dense(2)
    model = keras.Model(inputs, dense(inputs))
    x = RNG.standard_normal((3, 5, 6)).astype("float32")
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel + bias, rtol=1e-5)
    assert_onnx_parity(model, x)


def test_dropout_is_identity_at_inference_and_scales_when_training():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layers.Dropout(0.5)(inputs))
    np.testing.assert_array_equal(model.predict(X, verbose=0), X)
    proto = assert_onnx_parity(model, X)
    assert [n.op_type for n in proto.graph.node] == ["Identity"]  # only the output alias
    dropped = layers.Dropout(0.5, seed=1)(np.ones((1000,), "float32"), training=True)
    assert set(np.unique(dropped)) <= {0.0, 2.0} and 0.4 < (dropped == 0).mean() < 0.6
    with pytest.raises(ValueError, match="between 0 and 1"):
        layers.Dropout(1.5)


def test_flatten_reshape_identity():
    inputs = keras.Input((2, 3, 4))
    flat = layers.Flatten()(inputs)
    assert flat.shape == (None, 24)
    reshaped = layers.Reshape((-1, 6))(flat)
    assert reshaped.shape == (None, 4, 6)
    same = layers.Identity()(reshaped)
    model = keras.Model(inputs, [flat, reshaped, same])
    x = RNG.standard_normal((3, 2, 3, 4)).astype("float32")
    f, r, s = model.predict(x, verbose=0)
    np.testing.assert_array_equal(f, x.reshape(3, 24))
    np.testing.assert_array_equal(r, x.reshape(3, 4, 6))
    np.testing.assert_array_equal(s, r)
    assert_onnx_parity(model, x)
    with pytest.raises(ValueError, match="total size of the tensor must be unchanged"):
        layers.Reshape((5, 5))(inputs)
    dynamic = keras.Input((None, 4))
    model = keras.Model(dynamic, layers.Flatten()(dynamic))
    assert model.output_shape == (None, None)
    for steps in (2, 5):
        assert_onnx_parity(model, RNG.standard_normal((3, steps, 4)).astype("float32"))


MERGES = {
    layers.Add: lambda xs: xs[0] + xs[1] + xs[2],
    layers.Multiply: lambda xs: xs[0] * xs[1] * xs[2],
    layers.Average: lambda xs: (xs[0] + xs[1] + xs[2]) / 3,
    layers.Maximum: lambda xs: np.maximum(np.maximum(xs[0], xs[1]), xs[2]),
    layers.Minimum: lambda xs: np.minimum(np.minimum(xs[0], xs[1]), xs[2]),
}


@pytest.mark.parametrize("cls", list(MERGES), ids=lambda c: c.__name__)
def test_merge_layers(cls):
    inputs = [keras.Input((6,)) for _ in range(3)]
    model = keras.Model(inputs, cls()(inputs))
    xs = [RNG.standard_normal((4, 6)).astype("float32") for _ in range(3)]
    np.testing.assert_allclose(model.predict(xs, verbose=0), MERGES[cls](xs), rtol=1e-6)
    assert_onnx_parity(model, xs)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        cls()([inputs[0]])
    with pytest.raises(ValueError, match="incompatible shapes"):
        cls()([keras.Input((6,)), keras.Input((5,))])


def test_merge_functions_subtract_and_concatenate():
    a, b = keras.Input((6,)), keras.Input((2,))
    c = keras.Input((6,))
    diff = layers.subtract([a, c])
    cat = layers.concatenate([a, b], name="cat")
    both = layers.Concatenate(axis=-1)([diff, cat])
    summed = layers.add([a, c])
    avg = layers.average([a, c])
    hi, lo, prod = layers.maximum([a, c]), layers.minimum([a, c]), layers.multiply([a, c])
    model = keras.Model([a, b, c], [both, summed, avg, hi, lo, prod])
    xa, xb, xc = (RNG.standard_normal((4, n)).astype("float32") for n in (6, 2, 6))
    out = model.predict([xa, xb, xc], verbose=0)
    np.testing.assert_allclose(out[0], np.concatenate([xa - xc, xa, xb], -1), rtol=1e-6)
    assert model.get_layer("cat").output.shape == (None, 8)
    assert_onnx_parity(model, [xa, xb, xc])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([a, c, a])
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=1)([keras.Input((2, 3)), keras.Input((2, 4))])


def test_merge_with_broadcasting_and_dynamic_batch():
    a, b = keras.Input((3, 4)), keras.Input((1, 4))
    model = keras.Model([a, b], layers.Add()([a, b]))
    for n in (2, 5):
        xa = RNG.standard_normal((n, 3, 4)).astype("float32")
        xb = RNG.standard_normal((n, 1, 4)).astype("float32")
        np.testing.assert_allclose(model.predict([xa, xb], verbose=0), xa + xb, rtol=1e-6)
        assert_onnx_parity(model, [xa, xb])


def test_sequential_add_pop_and_input_shape_forms():
    model = keras.Sequential(name="seq")
    model.add(keras.Input((3,)))
    model.add(layers.Dense(4))
    model.add(layers.Dense(2))
    assert model.output_shape == (None, 2) and [layer.name for layer in model.layers] == ["dense", "dense_1"]
    popped = model.pop()
    assert popped.name == "dense_1" and model.output_shape == (None, 4)
    deferred = keras.Sequential([layers.Dense(4), layers.Dense(1)])
    assert not deferred.built
    x = RNG.standard_normal((5, 7)).astype("float32")
    assert deferred.predict(x, verbose=0).shape == (5, 1) and deferred.count_params() == 37
    assert_onnx_parity(deferred, x)
    with pytest.raises(ValueError, match="Only instances of `keras.Layer`"):
        keras.Sequential([object()])
    first = layers.Dense(2, input_shape=(3,))
    assert keras.Sequential([first]).input_shape == (None, 3)


HARNESS_CASES = [
    ("Dense", {"units": 3, "activation": "tanh"}, (4,)),
    ("Dense", {"units": 2, "use_bias": False}, (3, 4)),
    ("Activation", {"activation": "gelu"}, (4,)),
    ("Identity", {}, (4,)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
