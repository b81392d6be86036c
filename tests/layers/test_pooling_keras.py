"""Pooling layers against the real Keras 3 (torch backend): same models, same predictions."""

import numpy as np
import pytest

import irtool

from ..harness import keras_parity, layers_from, require_keras

real = require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(31)
MY_MODULES = {"pooling", "reshaping", "preprocessing"}


def compare_with_keras(builder, feeds, atol=1e-5, seed=False):
    """``keras_parity`` with this family's checks: shapes, names, exact configs, ONNX.

    ``seed`` fixes Keras' initializers (slow: only for models with weights)."""
    ours, theirs = keras_parity(
        builder,
        feeds,
        atol=atol,
        seed=0 if seed else None,
        output_shape=True,
        names=True,
        configs=layers_from(*MY_MODULES),
        config_ignore=(),
        config_nested="exact",
        onnx_parity=True,
    )
    return theirs, ours


CASES = [
    ("MaxPooling1D", (9, 3), {}),
    ("MaxPooling1D", (9, 3), {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("MaxPooling1D", (9, 3), {"pool_size": 2, "strides": 3, "padding": "same"}),
    ("MaxPooling2D", (7, 8, 3), {}),
    ("MaxPooling2D", (7, 8, 3), {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}),
    ("MaxPooling2D", (3, 7, 8), {"pool_size": 3, "strides": 1, "data_format": "channels_first"}),
    ("MaxPooling3D", (5, 6, 4, 2), {"pool_size": 2, "padding": "same"}),
    ("AveragePooling1D", (9, 3), {"pool_size": 2}),
    ("AveragePooling1D", (9, 3), {"pool_size": 3, "strides": 1, "padding": "same"}),
    ("AveragePooling2D", (7, 8, 3), {"pool_size": (2, 3), "strides": 2}),
    ("AveragePooling2D", (7, 9, 3), {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AveragePooling2D", (3, 7, 9), {"pool_size": 3, "strides": 1, "padding": "same", "data_format": "channels_first"}),
    ("AveragePooling3D", (5, 6, 4, 2), {"pool_size": (3, 2, 2), "strides": 1}),
    ("AveragePooling3D", (5, 5, 5, 2), {"pool_size": 3, "strides": 2, "padding": "same"}),
]


@pytest.mark.parametrize("name, shape, kwargs", CASES)
def test_windowed_pooling_matches_keras(name, shape, kwargs):
    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, getattr(k.layers, name)(**kwargs)(inputs))

    compare_with_keras(builder, RNG.standard_normal((2, *shape)).astype("float32"))


@pytest.mark.parametrize(
    "name",
    [
        "GlobalMaxPooling1D",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling3D",
        "GlobalAveragePooling3D",
    ],
)
@pytest.mark.parametrize("kwargs", [{}, {"keepdims": True}, {"data_format": "channels_first"}])
def test_global_pooling_matches_keras(name, kwargs):
    shape = {"1": (6, 3), "2": (5, 6, 3), "3": (4, 5, 3, 2)}[name[-2]]

    def builder(k):
        inputs = k.Input(shape)
        return k.Model(inputs, getattr(k.layers, name)(**kwargs)(inputs))

    compare_with_keras(builder, RNG.standard_normal((2, *shape)).astype("float32"))


def test_conv_pool_stack_with_masking_pool_matches_keras():
    def builder(k):
        ids = k.Input((None,), dtype="int32")
        x = k.layers.Embedding(20, 6, mask_zero=True)(ids)
        x = k.layers.GlobalAveragePooling1D()(x)
        return k.Model(ids, k.layers.Dense(2)(x))

    ids = np.array([[3, 4, 0, 0, 0], [1, 2, 3, 4, 5], [7, 0, 0, 0, 0]], dtype="int32")
    compare_with_keras(builder, ids, seed=True)


def test_avg_pool_same_asymmetric_padding_follows_tensorflow_semantics():
    """Keras' torch backend replicates edge pixels when "same" padding is asymmetric (its other
    backends and ONNX exclude the padding); irtool follows the TensorFlow/JAX/ONNX semantics."""
    x = np.arange(6, dtype="float32").reshape(1, 6, 1)
    ours = irtool.layers.AveragePooling1D(3, strides=2, padding="same")(x)
    np.testing.assert_allclose(ours[0, :, 0], [1.0, 3.0, 4.5])  # last window: mean(4, 5)
    theirs = np.asarray(real.layers.AveragePooling1D(3, strides=2, padding="same")(x))
    np.testing.assert_allclose(theirs[0, :2, 0], [1.0, 3.0])
