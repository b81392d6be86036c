"""Sequential: a plain stack of layers, built on the functional machinery."""

from __future__ import annotations

import numpy as np

from irtool.layers.input_layer import Input, InputLayer
from irtool.layers.layer import Layer
from irtool.models.functional import Functional
from irtool.ops.core import SymbolicTensor


class Sequential(Functional):
    """``Sequential([layers.Dense(64), ...])``; ``add()`` appends a layer.

    The graph is built as soon as the input shape is known (an ``Input``/``InputLayer``
    first, or ``input_shape=`` on the first layer), else on the first call.

    >>> from irtool import layers
    >>> model = Sequential([layers.Input((4,)), layers.Dense(2)])
    >>> model.output_shape
    (None, 2)
    """

    def __init__(self, layers=None, trainable=True, name=None):
        Layer.__init__(self, name=name, trainable=trainable)
        self.autocast = False
        self._stack: list = []
        self._input_layer = None
        self.built = False
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_rebuild()

    def add(self, layer, rebuild: bool = True) -> None:
        """Append ``layer`` (an ``Input`` tensor becomes the model's InputLayer)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer._keras_history[0].operation, InputLayer):
            layer = layer._keras_history[0].operation
        if not isinstance(layer, Layer):
            raise ValueError(
                "Only instances of `keras.Layer` can be added to a Sequential model. "
                f"Received: {layer} (of type {type(layer)})"
            )
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._stack:
                raise ValueError("Sequential model: an InputLayer can only be the first layer.")
            self._input_layer = layer
        else:
            names = {existing.name for existing in self._stack}
            if layer.name in names:
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f'"{layer.name}" is already the name of a layer in this model. Update the `name` argument '
                    "to pass a unique name."
                )
            self._stack.append(layer)
        if rebuild:
            self._maybe_rebuild()

    def pop(self) -> Layer:
        layer = self._stack.pop()
        self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self) -> None:
        if self._input_layer is None and self._stack and getattr(self._stack[0], "_batch_input_shape", None):
            shape = self._stack[0]._batch_input_shape
            self._input_layer = InputLayer(batch_shape=shape, dtype=self._stack[0].dtype)
        if self._input_layer is None:
            return
        self._build_graph_from(self._input_layer._tensor)

    def _build_graph_from(self, x) -> None:
        inputs = x
        for layer in self._stack:
            x = layer(x)
            if isinstance(x, (list, tuple)) and len(x) == 1:
                x = x[0]
        self._init_graph(inputs, x)

    def build(self, input_shape=None) -> None:
        if self.built and self._input_layer is not None:
            return
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        self._input_layer = Input(batch_shape=tuple(input_shape))._keras_history[0].operation
        self._maybe_rebuild()

    def __call__(self, *args, **kwargs):
        if not self.built:
            first = args[0] if args else next(iter(kwargs.values()))
            self.build((None,) + tuple(np.shape(first) if not hasattr(first, "shape") else first.shape)[1:])
        return super().__call__(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        if not self.built:
            self.build((None,) + tuple(np.shape(x))[1:])
        return super().predict(x, *args, **kwargs)

    # -- config (see functional_config.py) -----------------------------------------------------
    def get_config(self) -> dict:
        """Keras 3's Sequential config: ``layers`` (InputLayer first when known), ``build_input_shape``."""
        from irtool.models.functional_config import sequential_get_config

        return sequential_get_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from irtool.models.functional_config import sequential_from_config

        return sequential_from_config(cls, config, custom_objects)

    def get_build_config(self):
        if not self.built or self._input_layer is None:
            return None
        return {"input_shape": list(self._input_layer.batch_shape)}

    def build_from_config(self, config) -> None:
        if config and config.get("input_shape") is not None:
            self.build(tuple(config["input_shape"]))

    @property
    def layers(self) -> list:
        # Keras 3's Sequential hides its InputLayer.
        return list(self._stack)

    @property
    def operations(self) -> list:
        return list(self._operations) if self.built else list(self._stack)

    def _sublayers(self) -> list:
        return list(self._stack)
