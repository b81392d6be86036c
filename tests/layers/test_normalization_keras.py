"""Keras parity for the normalization layers: same model in both, Keras' weights copied over."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
real = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import irtool  # noqa: E402

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
    real.utils.set_random_seed(0)
    real.backend.clear_session()
    theirs = randomized(builder(real))
    irtool.backend.clear_session()
    ours = builder(irtool)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert [w.trainable for w in ours.weights] == [w.trainable for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    want = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x, verbose=0), want, atol=atol, rtol=1e-5)
    for ours_layer, their_layer in zip(ours.layers[1:], theirs.layers[1:]):
        if not type(ours_layer).__module__.endswith("normalization"):
            continue
        config, their_config = ours_layer.get_config(), their_layer.get_config()
        assert set(config) == set(their_config)
        for key in config:
            if key not in ("dtype",) and not isinstance(config[key], dict):
                assert config[key] == their_config[key], key
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
