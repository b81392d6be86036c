"""Permute, RepeatVector, UpSampling, ZeroPadding and Cropping against the real Keras 3."""

import numpy as np
import pytest

from ..harness import require_keras
from .test_pooling_keras import compare_with_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(32)

CASES = [
    ("Permute", (3, 4, 5), {"dims": (3, 1, 2)}),
    ("Permute", (3, 4), {"dims": (2, 1)}),
    ("RepeatVector", (4,), {"n": 3}),
    ("UpSampling1D", (4, 3), {"size": 3}),
    ("UpSampling2D", (4, 5, 3), {}),
    ("UpSampling2D", (3, 4, 5), {"size": (2, 3), "data_format": "channels_first"}),
    ("UpSampling2D", (4, 5, 3), {"size": (2, 3), "interpolation": "bilinear"}),
    ("UpSampling2D", (3, 4, 5), {"size": 3, "interpolation": "bilinear", "data_format": "channels_first"}),
    ("UpSampling3D", (2, 3, 2, 2), {"size": (1, 2, 3)}),
    ("ZeroPadding1D", (4, 3), {"padding": (1, 2)}),
    ("ZeroPadding2D", (4, 5, 3), {}),
    ("ZeroPadding2D", (4, 5, 3), {"padding": ((1, 0), (2, 3))}),
    ("ZeroPadding2D", (3, 4, 5), {"padding": (2, 1), "data_format": "channels_first"}),
    ("ZeroPadding3D", (2, 3, 2, 2), {"padding": 1}),
    ("Cropping1D", (6, 3), {"cropping": (2, 1)}),
    ("Cropping2D", (6, 7, 3), {"cropping": ((1, 2), (0, 3))}),
    ("Cropping2D", (3, 6, 7), {"cropping": 2, "data_format": "channels_first"}),
    ("Cropping3D", (4, 5, 6, 2), {}),
    ("Cropping3D", (4, 5, 6, 2), {"cropping": ((0, 1), (2, 0), (1, 1))}),
]


@pytest.mark.parametrize("name, shape, kwargs", CASES)
def test_reshaping_layers_match_keras(name, shape, kwargs):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, getattr(k.layers, name)(**kwargs)(inputs))

    compare_with_keras(builder, RNG.standard_normal((2, *shape)).astype("float32"))


def test_autoencoder_decoder_stack_matches_keras():
    def builder(k):
        inputs = k.Input((4, 4, 3))
        x = k.layers.ZeroPadding2D(1)(inputs)
        x = k.layers.Conv2D(4, 3, activation="relu")(x)
        x = k.layers.UpSampling2D(2)(x)
        x = k.layers.Cropping2D(((1, 0), (0, 1)))(x)
        x = k.layers.MaxPooling2D(2, padding="same")(x)
        x = k.layers.GlobalMaxPooling2D()(x)
        x = k.layers.RepeatVector(2)(x)
        return k.Model(inputs, k.layers.Permute((2, 1))(x))

    compare_with_keras(builder, RNG.standard_normal((2, 4, 4, 3)).astype("float32"), seed=True)
