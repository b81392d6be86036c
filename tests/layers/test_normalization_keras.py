"""Keras parity for the normalization layers: same model in both, Keras' weights copied over."""

import numpy as np
import pytest

from ..harness import keras_parity, require_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(21)


def randomized(model):
    """Random weights for every variable (variances positive), set on the Keras model."""
    weights = [RNG.standard_normal(w.shape).astype("float32") for w in model.get_weights()]
    for i, w in enumerate(model.weights):
        if "variance" in w.path or "stddev" in w.path:
            weights[i] = np.abs(weights[i]) + 0.1
    model.set_weights(weights)
    return model


def check(builder, x, atol=1e-5):
    ours, _ = keras_parity(
        builder,
        x,
        atol=atol,
        weights=lambda theirs: randomized(theirs).get_weights(),
        weight_paths=True,
        trainable=True,
        configs=lambda layer: type(layer).__module__.endswith("normalization"),
    )
    return ours


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (6,)),
        ({"axis": 1, "epsilon": 0.01}, (3, 4)),
        ({"center": False, "momentum": 0.5}, (3, 4, 5)),
        ({"scale": False}, (5,)),
        ({"renorm": True}, (4,)),
    ],
)
def test_batch_normalization(kwargs, shape):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, k.layers.BatchNormalization(**kwargs)(inputs))

    check(builder, RNG.standard_normal((4, *shape)).astype("float32") * 2 + 1)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (6,)),
        ({"axis": [1, 2]}, (3, 4)),  # trailing axes (Keras' torch path needs contiguous trailing ones)
        ({"axis": -1, "epsilon": 1e-5, "center": False}, (3, 5)),
        ({"scale": False}, (2, 3, 4)),
    ],
)
def test_layer_normalization(kwargs, shape):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, k.layers.LayerNormalization(**kwargs)(inputs))

    check(builder, RNG.standard_normal((4, *shape)).astype("float32") * 3)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"groups": 2}, (6,)),
        ({"groups": 3}, (4, 6)),
        ({"groups": 2, "axis": 1}, (4, 3, 5)),
        ({"groups": -1, "center": False}, (5, 4)),
        ({"groups": 4, "epsilon": 0.1}, (2, 2, 8)),
    ],
)
def test_group_normalization(kwargs, shape):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, k.layers.GroupNormalization(**kwargs)(inputs))

    check(builder, RNG.standard_normal((3, *shape)).astype("float32") * 2)


@pytest.mark.parametrize("axis, shape", [(-1, (5,)), (1, (3, 4)), ([1, 2], (3, 4))])
def test_unit_normalization(axis, shape):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, k.layers.UnitNormalization(axis=axis)(inputs))

    x = RNG.standard_normal((3, *shape)).astype("float32")
    x[0] = 0
    check(builder, x)


def test_conv_batchnorm_stack():
    def builder(k):
        inputs = k.Input((6,))
        x = k.layers.Dense(8)(inputs)
        x = k.layers.BatchNormalization()(x)
        x = k.layers.Activation("relu")(x)
        x = k.layers.LayerNormalization()(x)
        return k.Model(inputs, k.layers.Dense(2)(x))

    check(builder, RNG.standard_normal((5, 6)).astype("float32"))
