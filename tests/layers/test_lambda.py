"""Lambda: functions written in irtool.ops are traced into the graph; others fail clearly."""

import math

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity
from ..harness import run_layer_test

RNG = np.random.default_rng(16)


def scaled_sin(x, factor=1.0):
    return ops.sin(x) * factor


@pytest.mark.parametrize(
    "make, reference",
    [
        (lambda: layers.Lambda(lambda x: x * 2.0 + 1.0), lambda x: x * 2 + 1),
        (lambda: layers.Lambda(scaled_sin, arguments={"factor": 3.0}), lambda x: np.sin(x) * 3),
        (
            lambda: layers.Lambda(lambda x: ops.sum(ops.square(x), axis=-1, keepdims=True)),
            lambda x: (x**2).sum(-1, keepdims=True),
        ),
        (lambda: layers.Lambda(lambda x: ops.concatenate([x, -x], axis=-1)), lambda x: np.concatenate([x, -x], -1)),
    ],
)
def test_traced_functions(make, reference):
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, make()(inputs))
    for steps in (2, 5):
        x = RNG.standard_normal((2, steps, 3)).astype("float32")
        np.testing.assert_allclose(model.predict(x, verbose=0), reference(x), rtol=1e-5, atol=1e-6)
        assert_onnx_parity(model, x)


def test_multiple_inputs_and_outputs_and_eager_call():
    a, b = keras.Input((4,)), keras.Input((4,))
    split = layers.Lambda(lambda xs: [xs[0] + xs[1], xs[0] * xs[1]])
    s, p = split([a, b])
    model = keras.Model([a, b], [s, p])
    x, y = RNG.standard_normal((2, 3, 4)).astype("float32")
    got = model.predict([x, y], verbose=0)
    np.testing.assert_allclose(got[0], x + y, rtol=1e-6)
    np.testing.assert_allclose(got[1], x * y, rtol=1e-6)
    assert_onnx_parity(model, [x, y])
    np.testing.assert_allclose(split([x, y])[1], x * y)


def test_function_with_a_sublayer_weight():
    dense = layers.Dense(2)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Lambda(lambda x: ops.relu(dense(x)))(inputs))
    x = RNG.standard_normal((4, 3)).astype("float32")
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6)
    assert_onnx_parity(model, x)


@pytest.mark.parametrize(
    "function, error",
    [
        (lambda x: np.sin(x), TypeError),
        (lambda x: math.exp(x), ValueError),
        (lambda x: x.numpy() * 2, TypeError),
        (lambda x: np.asarray(x) + 1, ValueError),
    ],
)
def test_non_ops_code_raises_naming_the_layer(function, error):
    inputs = keras.Input((3,))
    with pytest.raises(error, match="(?s)Lambda layer 'my_lambda'.*irtool.ops"):
        layers.Lambda(function, name="my_lambda")(inputs)


def test_returning_a_non_tensor_raises():
    inputs = keras.Input((3,))
    with pytest.raises(TypeError, match="(?s)Lambda layer 'const'.*returned a ndarray"):
        layers.Lambda(lambda x: np.ones(3, "float32"), name="const")(inputs)


def test_masks_mask_argument_and_training():
    tokens = keras.Input((4,), dtype="int32")
    embedded = layers.Embedding(5, 2, mask_zero=True)(tokens)
    seen = {}

    def masked_sum(x, mask=None, training=None):
        seen["mask"], seen["training"] = mask, training
        return ops.sum(x * ops.expand_dims(ops.cast(mask, x.dtype), -1), axis=1)

    with pytest.warns(UserWarning, match="does not support masking"):  # Keras warns too: mask=None
        out = layers.Lambda(masked_sum)(embedded)
    assert seen["mask"] is embedded._keras_mask and seen["training"] is None
    assert out._keras_mask is None
    keep = layers.Lambda(lambda x: x * 2.0, mask=lambda inputs, mask: mask)(embedded)
    assert keep._keras_mask is embedded._keras_mask
    fixed = layers.Lambda(lambda x: x + 0.0, mask=None)
    with pytest.warns(UserWarning, match="does not support masking"):
        assert fixed(embedded)._keras_mask is None
    model = keras.Model(tokens, out)
    ids = np.array([[1, 0, 2, 0]], "int32")
    (table,) = model.get_weights()
    np.testing.assert_allclose(model.predict(ids, verbose=0), table[[1, 2]].sum(0, keepdims=True), rtol=1e-6)


def test_config():
    layer = layers.Lambda(scaled_sin, output_shape=(3,), arguments={"factor": 2.0}, name="lam")
    config = layer.get_config()
    assert config["function"]["class_name"] == "function" and config["function"]["config"] == "scaled_sin"
    assert config["output_shape"] == (3,) and config["arguments"] == {"factor": 2.0}
    lam = layers.Lambda(lambda x, a=1: x * a).get_config()
    assert lam["function"]["class_name"] == "__lambda__"
    assert set(lam["function"]["config"]) == {"code", "defaults", "closure"} and lam["function"]["config"][
        "defaults"
    ] == (1,)
    assert layer.compute_output_shape((None, 3)) == (None, 3)
    with pytest.raises(TypeError, match="Unknown function: 'scaled_sin'"):
        layers.Lambda.from_config(config)
    assert layers.Lambda.from_config(config, custom_objects={"scaled_sin": scaled_sin}).function is scaled_sin
    with pytest.raises(TypeError, match="must be callable"):
        layers.Lambda(3)


def test_layer_harness():
    """A named function (found through custom_objects on load): configs, .keras, ONNX and gradients.
    Keras' own Lambda cannot run a function written in irtool.ops, so there is no Keras side."""
    run_layer_test(
        layers.Lambda,
        {"function": scaled_sin, "arguments": {"factor": 3.0}},
        (3, 4),
        custom_objects={"scaled_sin": scaled_sin},
        keras_parity=False,
        expected_output_shape=(None, 3, 4),
    )
