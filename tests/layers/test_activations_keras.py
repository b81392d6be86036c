"""Keras parity for the activation layers and the regularization layers (identity at inference)."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
real = pytest.importorskip("keras")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import irtool  # noqa: E402

RNG = np.random.default_rng(22)
X = (RNG.standard_normal((4, 3, 5)) * 3).astype("float32")
X[0, 0, :4] = [0.0, 0.5, 6.0, -0.5]


def check(builder, feeds, atol=1e-6):
    real.utils.set_random_seed(0)
    real.backend.clear_session()
    theirs = builder(real)
    theirs.set_weights([RNG.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    irtool.backend.clear_session()
    ours = builder(irtool)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    want = np.asarray(theirs.predict(feeds, verbose=0))
    np.testing.assert_allclose(ours.predict(feeds, verbose=0), want, atol=atol, rtol=1e-5)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    for ours_layer, their_layer in zip(ours.layers, theirs.layers):
        if not type(ours_layer).__module__.endswith(("activations", "regularization")):
            continue
        config, their_config = ours_layer.get_config(), their_layer.get_config()
        assert set(config) == set(their_config), type(ours_layer).__name__
        for key, value in config.items():
            if key != "dtype" and not isinstance(value, dict):
                assert value == their_config[key], key


LAYERS = [
    ("ReLU", {}),
    ("ReLU", {"max_value": 6.0}),
    ("ReLU", {"max_value": 2.5, "negative_slope": 0.1}),
    ("ReLU", {"threshold": 0.5}),
    ("ReLU", {"max_value": 4.0, "negative_slope": 0.2, "threshold": 0.5}),
    ("LeakyReLU", {}),
    ("LeakyReLU", {"negative_slope": 0.05}),
    ("PReLU", {}),
    ("PReLU", {"shared_axes": [1]}),
    ("PReLU", {"shared_axes": [1, 2]}),
    ("ELU", {}),
    ("ELU", {"alpha": 0.4}),
    ("Softmax", {}),
    ("Softmax", {"axis": 1}),
    ("Softmax", {"axis": (1, 2)}),
    ("SpatialDropout1D", {"rate": 0.3}),
    ("GaussianNoise", {"stddev": 0.3}),
    ("GaussianDropout", {"rate": 0.3}),
    ("AlphaDropout", {"rate": 0.3}),
    ("ActivityRegularization", {"l1": 0.1, "l2": 0.01}),
]


@pytest.mark.parametrize("name, kwargs", LAYERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LAYERS)])
def test_layer_matches_keras(name, kwargs):
    def builder(k):
        inputs = k.Input((3, 5))
        return k.Model(inputs, getattr(k.layers, name)(**kwargs)(inputs))

    check(builder, X)


@pytest.mark.parametrize("name, shape", [("SpatialDropout2D", (3, 3, 4)), ("SpatialDropout3D", (2, 2, 2, 3))])
def test_spatial_dropout_nd(name, shape):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, getattr(k.layers, name)(0.4)(inputs))

    check(builder, RNG.standard_normal((2, *shape)).astype("float32"))


def test_softmax_mask_argument():
    def builder(k):
        scores, mask = k.Input((3, 5)), k.Input((1, 5), dtype="bool")
        return k.Model([scores, mask], k.layers.Softmax()(scores, mask=mask))

    mask = RNG.random((4, 1, 5)) > 0.4
    mask[0] = False
    check(builder, [X, mask])
