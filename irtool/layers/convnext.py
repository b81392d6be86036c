"""Layers of Keras' ConvNeXt application (``keras.src.applications.convnext``), so that saved
ConvNeXt models load with no custom objects: Keras writes them under that module, and irtool
registers them under the same name (``irtool.layers``' ``register_namespace``)."""

from __future__ import annotations

from irtool import initializers
from irtool.layers.dropout import Dropout
from irtool.layers.layer import Layer


class LayerScale(Layer):
    """Multiplies the last axis by a learned ``gamma`` of ``projection_dim`` values, first all
    ``init_values`` (Keras' weight is unnamed, so its path ends in ``variable``)."""

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim
        self.gamma = None

    def build(self, input_shape):
        self.gamma = self.add_weight(
            shape=(self.projection_dim,), initializer=initializers.Constant(self.init_values), trainable=True
        )

    def call(self, x):
        return x * self.gamma

    def get_config(self):
        config = super().get_config()
        config.update({"init_values": self.init_values, "projection_dim": self.projection_dim})
        return config


class StochasticDepth(Dropout):
    """Drops whole residual paths: when training, each example is zeroed with probability
    ``drop_path_rate`` and the kept ones scaled by ``1 / (1 - drop_path_rate)``; the identity at
    inference. That is dropout with one mask value per example, so it reuses Dropout's primitive
    (seeded by the trainer's generator) with a ``(batch, 1, ..., 1)`` noise shape."""

    supports_masking = False  # Keras' StochasticDepth is a plain Layer

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(rate=drop_path_rate, **kwargs)
        self.drop_path_rate = drop_path_rate

    def _noise_shape(self, shape):
        return (None,) + (1,) * (len(shape) - 1)

    def get_config(self):
        config = Layer.get_config(self)  # not Dropout's rate/noise_shape/seed
        config["drop_path_rate"] = self.drop_path_rate
        return config
