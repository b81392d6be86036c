"""Mask propagation (Keras' ``_keras_mask``): produced by compute_mask, passed as ``mask=``."""

import numpy as np
import pytest

import irtool as keras
from irtool import layers, ops

from ..harness import run_layer_test


class MakeMask(layers.Layer):
    supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, previous_mask):
        return ops.not_equal(ops.sum(inputs, axis=-1), 0.0)


class MaskedMean(layers.Layer):
    """Mean over time of the unmasked steps."""

    def call(self, inputs, mask=None):
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs * weights, axis=1) / ops.sum(weights, axis=1)


@pytest.mark.filterwarnings("ignore:.*does not support masking")
def test_mask_flows_through_supporting_layers_into_mask_argument():
    inputs = keras.Input((4, 3))
    masked = MakeMask()(inputs)
    assert masked._keras_mask is not None and masked._keras_mask.shape == (None, 4)
    dense = layers.Dense(3, kernel_initializer="identity", bias_initializer="zeros")(masked)
    assert dense._keras_mask is masked._keras_mask or dense._keras_mask.shape == (None, 4)
    model = keras.Model(inputs, MaskedMean()(layers.Dropout(0.1)(dense)))
    x = np.zeros((2, 4, 3), "float32")
    x[0, :2] = 1.0
    x[1, :3] = 2.0
    np.testing.assert_allclose(model.predict(x, verbose=0), [[1, 1, 1], [2, 2, 2]], rtol=1e-6)
    from ..conftest import assert_onnx_parity

    assert_onnx_parity(model, x)


def test_non_masking_layer_warns_and_drops_the_mask():
    inputs = keras.Input((4, 3))
    masked = MakeMask()(inputs)
    with pytest.warns(UserWarning, match="does not support masking"):
        flat = layers.Flatten()(masked)
    assert flat._keras_mask is None


def test_layer_harness():
    """A custom mask-producing layer through tests/harness.py (no Keras twin: custom class)."""
    run_layer_test(MakeMask, {}, (4, 3), custom_objects={"MakeMask": MakeMask})
