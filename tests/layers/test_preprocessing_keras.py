"""Rescaling, Normalization, CenterCrop and Resizing against the real Keras 3 (torch backend)."""

import numpy as np
import pytest

from ..harness import require_keras
from .test_pooling_keras import compare_with_keras

require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(33)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


@pytest.mark.parametrize(
    "name, shape, kwargs",
    [
        ("Rescaling", (4, 3), {"scale": 1 / 255.0}),
        ("Rescaling", (4, 3), {"scale": 2.0, "offset": -1.0}),
        ("Normalization", (5, 3), {"mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 9.0]}),
        ("Normalization", (5, 3), {"axis": (1, 2), "mean": 0.5, "variance": 2.0, "invert": True}),
        ("CenterCrop", (9, 8, 3), {"height": 4, "width": 5}),
        ("CenterCrop", (3, 9, 8), {"height": 5, "width": 2, "data_format": "channels_first"}),
        ("CenterCrop", (3, 5, 2), {"height": 6, "width": 4}),
        ("Resizing", (6, 9, 3), {"height": 4, "width": 5}),
        ("Resizing", (6, 9, 3), {"height": 11, "width": 13}),
        ("Resizing", (6, 9, 3), {"height": 4, "width": 5, "interpolation": "nearest"}),
        ("Resizing", (6, 9, 3), {"height": 14, "width": 10, "interpolation": "nearest"}),
        ("Resizing", (3, 6, 9), {"height": 5, "width": 5, "data_format": "channels_first"}),
        ("Resizing", (6, 9, 3), {"height": 4, "width": 4, "crop_to_aspect_ratio": True}),
        ("Resizing", (6, 9, 3), {"height": 4, "width": 4, "pad_to_aspect_ratio": True, "fill_value": 0.5}),
    ],
)
def test_preprocessing_layers_match_keras(name, shape, kwargs):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, getattr(k.layers, name)(**kwargs)(inputs))

    compare_with_keras(builder, rand(2, *shape) + 1)


@pytest.mark.parametrize("axis", [-1, (1, 2), None])
def test_normalization_adapt_matches_keras(axis):
    data = rand(20, 4, 3) * 2 + 1

    def builder(k):
        layer = k.layers.Normalization(axis=axis)
        layer.adapt(data)
        inputs = k.Input((4, 3))
        return k.Model(inputs, layer(inputs))

    theirs, ours = compare_with_keras(builder, data[:5])
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights()):
        assert mine.dtype == keras_weight.dtype and mine.shape == keras_weight.shape
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-6)
