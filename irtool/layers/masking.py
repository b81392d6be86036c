"""Masking: zeroes the timesteps whose features all equal ``mask_value`` and masks them."""

from __future__ import annotations

from irtool import ops
from irtool.layers.layer import Layer
from irtool.serialization.keras_objects import deserialize_keras_object


class Masking(Layer):
    """Keeps a timestep (the last axis being the features) when any feature differs from
    ``mask_value``; the others become zeros, and the output carries the mask of kept steps
    (``inputs.shape[:-1]``) for downstream layers (RNNs, masked pooling, attention)."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, dict) and mask_value.get("config", None):
            mask_value = deserialize_keras_object(mask_value)  # an array saved by Keras
        self.mask_value = mask_value
        self.supports_masking = True
        self.built = True

    def _kept(self, inputs, keepdims):
        return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1, keepdims=keepdims)

    def call(self, inputs):
        return ops.where(self._kept(inputs, keepdims=True), inputs, ops.zeros_like(inputs))

    def compute_mask(self, inputs, previous_mask=None):
        return self._kept(inputs, keepdims=False)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config
