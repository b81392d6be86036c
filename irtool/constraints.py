"""Weight constraints with Keras' names, arguments and configs, computed with ``irtool.ops``.

A constraint projects a weight back into an allowed set after each optimizer step (the
optimizer calls ``variable.constraint(variable)``). Layers accept one as a name
(``"max_norm"``), a config dict, an instance or any callable.

>>> import numpy as np
>>> NonNeg()(np.array([-1.0, 2.0], "float32")).tolist()
[0.0, 2.0]
"""

from __future__ import annotations

from irtool import ops
from irtool.serialization.keras_objects import (
    deserialize_keras_object,
    get_from_identifier,
    register_namespace,
    serialize_keras_object,
)

_EPSILON = 1e-7  # Keras' backend.epsilon()


def _column_norms(w, axis):
    return ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))


class Constraint:
    """Base class: ``constraint(w) -> projected w`` (the identity here)."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class MaxNorm(Constraint):
    """Rescale the weights along ``axis`` so that each norm is at most ``max_value``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        norms = _column_norms(w, self.axis)
        desired = ops.clip(norms, 0, self.max_value)
        return ops.multiply(w, ops.divide(desired, ops.add(norms, _EPSILON)))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Clip negative weights to zero."""

    def __call__(self, w):
        return ops.maximum(w, 0)


class UnitNorm(Constraint):
    """Divide the weights along ``axis`` by their norm."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return ops.divide(w, ops.add(_column_norms(w, self.axis), _EPSILON))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each norm along ``axis`` into ``[min_value, max_value]``; ``rate`` blends the
    clipped norm with the current one (``rate=1`` enforces it at once)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w):
        norms = _column_norms(w, self.axis)
        clipped = ops.clip(norms, self.min_value, self.max_value)
        desired = ops.add(ops.multiply(self.rate, clipped), ops.multiply(1 - self.rate, norms))
        return ops.multiply(w, ops.divide(desired, ops.add(norms, _EPSILON)))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_BY_NAME = {
    "Constraint": Constraint,
    "constraint": Constraint,
    "MaxNorm": MaxNorm,
    "max_norm": MaxNorm,
    "NonNeg": NonNeg,
    "non_neg": NonNeg,
    "UnitNorm": UnitNorm,
    "unit_norm": UnitNorm,
    "MinMaxNorm": MinMaxNorm,
    "min_max_norm": MinMaxNorm,
}


def serialize(constraint) -> dict | None:
    """Keras' serialized form: ``{"module": "keras.constraints", "class_name": "MaxNorm", ...}``."""

    return serialize_keras_object(constraint)


def deserialize(config, custom_objects=None):
    """A constraint from its serialized form (custom ones through ``custom_objects``)."""

    return deserialize_keras_object(config, custom_objects=custom_objects, module_objects=_BY_NAME)


def get(identifier):
    """A constraint from ``None``, a name (``"non_neg"``), a config dict, a class, an instance or a callable."""

    return get_from_identifier(identifier, _BY_NAME, "constraint")


register_namespace("keras.constraints", globals())
