"""Sequential: a plain stack of layers, built on the functional machinery."""

from __future__ import annotations

import numpy as np

from irtool.layers.input_layer import Input, InputLayer
from irtool.layers.layer import Layer, weight_path_scope
from irtool.models.functional import Functional
from irtool.models.functional_config import sequential_from_config, sequential_get_config
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

    _model_kind = "sequential"

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
            self._set_input_layer(layer)
        else:
            if any(existing.name == layer.name and existing is not layer for existing in self._stack):
                raise ValueError(
                    "All layers added to a Sequential model should have unique names. Name "
                    f"'{layer.name}' is already the name of a layer in this model. Update the `name` argument "
                    "to pass a unique name."
                )
            self._stack.append(layer)
        if rebuild:
            self._maybe_rebuild()
        else:
            self.built = False  # as in Keras: the next call or build() builds it again

    def _set_input_layer(self, layer: InputLayer) -> None:
        if self._input_layer is not None:
            raise ValueError(
                f"Sequential model '{self.name}' has already been configured to use input shape "
                f"{self._input_layer.batch_shape}. You cannot add a different Input layer to it."
            )
        if self._stack:
            # Keras accepts this and fails later, when the InputLayer is called on a tensor.
            raise ValueError(
                f"Sequential model '{self.name}': an InputLayer can only be the first layer. Received InputLayer "
                f"'{layer.name}' after {[existing.name for existing in self._stack]}."
            )
        self._input_layer = layer

    def pop(self, rebuild: bool = True) -> Layer:
        """Remove and return the last layer (Keras' signature); rebuild unless ``rebuild=False``."""
        if not self._stack:
            # IndexError, as Keras raises, but saying which model was empty.
            raise IndexError(f"pop() on Sequential model '{self.name}', which has no layers")
        layer = self._stack.pop()
        self.built = False
        if rebuild:
            self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self) -> None:
        """Build as soon as the input shape is known, when Keras does: an InputLayer, a first
        layer with ``input_shape=``, or a first layer that is a model (its input shape), followed
        by at least one more layer. Otherwise the model waits for ``build()`` or its first call."""
        self.built = False
        if not self._stack:
            return
        first = self._stack[0]
        if self._input_layer is None and getattr(first, "_batch_input_shape", None):
            self._input_layer = InputLayer(batch_shape=first._batch_input_shape, dtype=first.dtype)
        if self._input_layer is None and len(self._stack) > 1 and _single_input_shape(first) is not None:
            self._input_layer = InputLayer(batch_shape=_single_input_shape(first), dtype=first.dtype)
        if self._input_layer is not None:
            self._build_graph_from(self._input_layer._tensor)

    def _build_graph_from(self, x) -> None:
        inputs = x
        with weight_path_scope(self.name):  # Keras builds under the model's name: seq/dense/kernel
            for layer in self._stack:
                x = layer(x)
                if isinstance(x, (list, tuple)) and len(x) == 1:
                    x = x[0]
        self._init_graph(inputs, x)

    def build(self, input_shape=None) -> None:
        if input_shape is None or not _is_shape(input_shape):
            return  # as in Keras: only a single input shape builds a Sequential model
        input_shape = tuple(input_shape)
        if self._input_layer is None and not self._stack:
            raise ValueError(
                f"Sequential model {self.name} cannot be built because it has no layers. Call `model.add(layer)`."
            )
        if self._input_layer is not None and tuple(self._input_layer.batch_shape) != input_shape:
            raise ValueError(
                f"Sequential model '{self.name}' has already been configured to use input shape "
                f"{tuple(self._input_layer.batch_shape)}. You cannot build it with input_shape {input_shape}"
            )
        if self.built:
            return
        if self._input_layer is None:
            self._input_layer = Input(batch_shape=input_shape)._keras_history[0].operation
        self._build_graph_from(self._input_layer._tensor)

    def __call__(self, *args, **kwargs):
        if not self.built:
            self._build_for_call(args[0] if args else next(iter(kwargs.values())))
        return super().__call__(*args, **kwargs)

    def _build_for_call(self, first) -> None:
        if self._input_layer is not None:
            self.build(tuple(self._input_layer.batch_shape))
        else:
            self.build((None,) + tuple(np.shape(first) if not hasattr(first, "shape") else first.shape)[1:])

    def _flatten_feeds(self, x) -> list:
        # predict, fit, evaluate and the batch methods of a model without an Input build it from
        # their first data, as Keras does
        if not self.built:
            self._build_for_call(x)
        return super()._flatten_feeds(x)

    # Keras' Sequential has these only once built, and says so.
    @property
    def inputs(self) -> list:
        self._require_built("inputs")
        return super().inputs

    @property
    def outputs(self) -> list:
        self._require_built("outputs")
        return super().outputs

    @property
    def input(self):
        self._require_built("input")
        return super().input

    @property
    def output(self):
        self._require_built("output")
        return super().output

    @property
    def input_shape(self):
        self._require_built("input shape")
        return super().input_shape

    @property
    def output_shape(self):
        self._require_built("output shape")
        return super().output_shape

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise AttributeError(f"Sequential model '{self.name}' has no defined {what} yet.")

    # -- config (see functional_config.py) -----------------------------------------------------
    def get_config(self) -> dict:
        """Keras 3's Sequential config: ``layers`` (InputLayer first when known), ``build_input_shape``."""
        return sequential_get_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
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

    @layers.setter
    def layers(self, _):
        raise AttributeError(
            "`Sequential.layers` attribute is reserved and should not be used. "
            "Use `add()` and `pop()` to change the layers in this model."
        )

    @property
    def operations(self) -> list:
        return list(self._operations) if self.built else list(self._stack)

    def _sublayers(self) -> list:
        return list(self._stack)


def _is_shape(value) -> bool:
    """A single shape, ``(None, 3)``: a tuple or list of ints and ``None``s (not a list of shapes)."""
    return isinstance(value, (list, tuple)) and all(d is None or isinstance(d, (int, np.integer)) for d in value)


def _single_input_shape(layer):
    """The input shape of a built model used as a first layer, when it takes one tensor."""
    if not isinstance(layer, Functional) or not layer.built:
        return None
    try:
        shape = layer.input_shape
    except AttributeError:
        return None
    return tuple(shape) if _is_shape(shape) else None
