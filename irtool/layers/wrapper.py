"""Wrapper: the base of layers that hold one other layer (Keras 3's ``keras.layers.Wrapper``).

Its config is the base layer's plus ``layer`` (the wrapped layer, serialized), as in Keras, so
every wrapper (``TimeDistributed``, ``SpectralNormalization``) saves and loads the same way.
"""

from __future__ import annotations

from irtool.layers.layer import Layer, dtype_from_config
from irtool.layers.rnn import weight_scope
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object


class Wrapper(Layer):
    """Abstract wrapper base class: takes another layer and augments it.

    Not meant to be used as a layer itself; ``TimeDistributed`` and ``SpectralNormalization``
    are usable wrappers. The wrapped layer is ``self.layer``; its weights are named under the
    wrapper (``time_distributed/dense/kernel``) and stored under ``layer`` in weights files.
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Layer {layer} supplied to Wrapper isn't a supported layer type. Please ensure wrapped layer "
                "is a valid Keras layer."
            )
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape=None):
        if not self.layer.built:
            # Keras builds the wrapped layer inside the wrapper's name scope.
            with weight_scope(self, self.layer):
                self.layer.build(input_shape)
            self.layer.built = True
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["layer"] = serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dtype_from_config(dict(config))
        layer = config.pop("layer")
        if not isinstance(layer, Layer):
            layer = deserialize_keras_object(layer, custom_objects=custom_objects, kind="layer")
        return cls(layer, **config)
