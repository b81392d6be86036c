"""Keras parity for the activation layers and the regularization layers (identity at inference)."""

import numpy as np
import pytest

from ..harness import keras_parity, layers_from, require_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(22)
X = (RNG.standard_normal((4, 3, 5)) * 3).astype("float32")
X[0, 0, :4] = [0.0, 0.5, 6.0, -0.5]


def check(builder, feeds, atol=1e-6):
    keras_parity(
        builder,
        feeds,
        atol=atol,
        weights=lambda theirs: [RNG.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()],
        weight_paths=True,
        names=True,
        configs=layers_from("activations", "regularization"),
    )


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
