"""Activation: applies an activation function by name or callable."""

from __future__ import annotations

from irtool import activations
from irtool.layers.layer import Layer


class Activation(Layer):
    """``Activation("relu")`` and friends (every name in ``irtool.activations``)."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.built = True

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
