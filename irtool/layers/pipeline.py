"""Pipeline: a list of layers applied in sequence, as one plain layer (Keras 3's ``Pipeline``).

Keras uses it for preprocessing and data augmentation stacks. Unlike ``Sequential`` it is not a
model: it has no inputs of its own, and its config is just ``layers`` and ``name``.
"""

from __future__ import annotations

from irtool.ir import tree
from irtool.layers.layer import Layer
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object


class Pipeline(Layer):
    """Applies a series of layers to an input::

        preprocessing = layers.Pipeline([layers.Rescaling(1 / 255.0), layers.Resizing(64, 64)])

    Each layer gets ``training`` (when given and its ``call`` takes it) and the mask the previous
    layer produced (when its ``call`` takes one).
    """

    def __init__(self, layers, name=None):
        super().__init__(name=name)
        self._pipeline_layers = layers

    @property
    def layers(self):
        return self._pipeline_layers

    def build(self, input_shape):
        # Nothing of its own: each layer builds when first called, or from the build_config its
        # own serialized config carries. Defined so the input shape is recorded as Keras does.
        self.built = True

    def call(self, inputs, training=True, mask=None):
        outputs = inputs
        for layer in self._pipeline_layers:
            kwargs = {}
            if layer._call_has_mask:
                kwargs["mask"] = mask
            if layer._call_has_training and training is not None:
                kwargs["training"] = training
            outputs = layer(inputs, **kwargs)
            inputs = outputs
            mask = tree.map_structure(lambda t: getattr(t, "_keras_mask", None), outputs)
        return outputs

    def get_config(self):
        return {"layers": [serialize_keras_object(layer) for layer in self._pipeline_layers], "name": self.name}

    @classmethod
    def from_config(cls, config):
        layers = config.get("layers")
        if not isinstance(layers, (list, tuple)):
            raise ValueError(
                "`Pipeline` config must contain a `layers` key mapping to a list of serialized layers. "
                f"Received config with layers={layers}."
            )
        config = {**config, "layers": [deserialize_keras_object(x, kind="layer") for x in layers]}
        return cls(**config)
