"""Configs across irtool and real Keras 3: each side rebuilds the other's models and predicts the same."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import irtool

from ..harness import assert_same_outputs, require_keras
from ._guide_models import BUILDERS, sample_inputs

real = require_keras()


def with_raw_ops(keras):
    """Top-level ops (``+``, slicing, ``ops.*``) between layers, as Keras records them."""
    layers, ops = keras.layers, keras.ops
    a = keras.Input(shape=(4,), name="a")
    b = keras.Input(shape=(4,), name="b")
    x = a + b * 2.0
    y = ops.sum(ops.reshape(x, (-1, 2, 2)), axis=1)
    z = ops.concatenate([x[:, 1:3], y], axis=-1)
    z = ops.where(ops.greater(z, 0.0), z, ops.negative(z))
    return keras.Model([a, b], [layers.Dense(2, name="head")(z), ops.mean(x, axis=-1, keepdims=True)], name="raw")


def sequential(keras):
    layers = keras.layers
    return keras.Sequential(
        [keras.Input((6,)), layers.Dense(5, activation="relu"), layers.Dropout(0.1), layers.Dense(2)], name="seq"
    )


def nested_twice(keras):
    """A functional model called twice inside another (node index offsets)."""
    layers = keras.layers
    inner_input = keras.Input((4,), name="inner_in")
    inner = keras.Model(inner_input, layers.Dense(4, activation="tanh", name="t")(inner_input), name="inner")
    x = keras.Input((4,), name="x")
    return keras.Model(x, [inner(x), inner(inner(x))], name="twice")


MODELS = {**BUILDERS, "with_raw_ops": with_raw_ops, "sequential": sequential, "nested_twice": nested_twice}


def _feeds(model):
    inputs = sample_inputs(model)
    return inputs if len(inputs) > 1 else inputs[0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_irtool_config_builds_in_keras(name):
    model = MODELS[name](irtool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = real.models.model_from_json(model.to_json())
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    restored.set_weights(model.get_weights())
    assert_same_outputs(model, restored, _feeds(model), rtol=1e-5, atol=1e-5)
    config = json.loads(json.dumps(model.get_config()))
    again = real.Model.from_config(config) if name != "sequential" else real.Sequential.from_config(config)
    assert len(again.weights) == len(model.weights)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_config_builds_in_irtool(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = MODELS[name](real)
        text = theirs.to_json()
    model = irtool.models.model_from_json(text)
    assert [layer.name for layer in model.layers] == [layer.name for layer in theirs.layers]
    assert [tuple(t.shape) for t in model.outputs] == [tuple(t.shape) for t in theirs.outputs]
    model.set_weights([np.asarray(w) for w in theirs.get_weights()])
    assert_same_outputs(theirs, model, _feeds(model), rtol=1e-5, atol=1e-5, quiet=True)
    rebuilt = irtool.Model.from_config(json.loads(text)["config"]) if name != "sequential" else None
    if rebuilt is not None:
        assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in theirs.layers]


@pytest.mark.parametrize("name", ["mnist_mlp", "toy_resnet", "nested_autoencoder", "sequential"])
def test_clone_model_matches_keras_structure(name):
    ours = irtool.models.clone_model(MODELS[name](irtool))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = real.models.clone_model(MODELS[name](real))
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]


def test_custom_layer_config_loads_in_keras_with_custom_objects():
    class Scale(irtool.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    class KerasScale(real.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    inputs = irtool.Input((3,))
    model = irtool.Model(inputs, Scale(3.0, name="scale")(inputs))
    restored = real.models.model_from_json(model.to_json(), custom_objects={"Scale": KerasScale})
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(np.asarray(restored.predict(x, verbose=0)), x * 3.0)
