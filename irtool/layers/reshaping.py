"""Flatten, Reshape and Identity: layers that only move data around."""

from __future__ import annotations

import math

from irtool import ops
from irtool.layers.layer import Layer


class Flatten(Layer):
    """Flattens all axes but the batch axis: ``(None, 4, 5) -> (None, 20)``."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"
        self.built = True

    def call(self, inputs):
        if self.data_format == "channels_first" and len(inputs.shape) > 2:
            inputs = ops.transpose(inputs, (0, *range(2, len(inputs.shape)), 1))
        rest = inputs.shape[1:]
        if None in rest:
            return ops.reshape(inputs, (None, -1))
        return ops.reshape(inputs, (None, math.prod(rest)))

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshapes the non-batch axes to ``target_shape`` (which may hold one -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        self.built = True

    def call(self, inputs):
        try:
            return ops.reshape(inputs, (None,) + self.target_shape)
        except ValueError:
            raise ValueError(
                f"The total size of the tensor must be unchanged. Received: input_shape={tuple(inputs.shape[1:])}, "
                f"target_shape={self.target_shape}"
            ) from None

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Identity(Layer):
    """Returns its input unchanged (a placeholder layer)."""

    supports_masking = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs):
        return inputs
