"""Weight regularizers with Keras' names, arguments and configs, computed with ``irtool.ops``.

A regularizer maps a weight to a scalar penalty. Layers accept one as a name (``"l2"``),
a config dict, an instance or any callable (``kernel_regularizer="l1"``), record it on the
weight they create (``variable.regularizer``) and report the current penalties in
``layer.losses``.

>>> import numpy as np
>>> float(L2(0.5)(np.array([1.0, 2.0], "float32")))
2.5
"""

from __future__ import annotations

import math

import numpy as np

from irtool import ops
from irtool.serialization.keras_objects import (
    deserialize_keras_object,
    get_from_identifier,
    register_namespace,
    serialize_keras_object,
)


def _validate_penalty(value, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isinf(value)
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. Received: {name}={value}")
    return float(value)


class Regularizer:
    """Base class: ``regularizer(weight) -> scalar penalty``; subclasses define ``get_config``."""

    def __call__(self, x):
        return 0.0

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class L1(Regularizer):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1=0.01):
        self.l1 = _validate_penalty(0.01 if l1 is None else l1, "l1")

    def __call__(self, x):
        return ops.multiply(self.l1, ops.sum(ops.absolute(x)))

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2=0.01):
        self.l2 = _validate_penalty(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return ops.multiply(self.l2, ops.sum(ops.square(x)))

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; each term only when its factor is not zero."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate_penalty(0.0 if l1 is None else l1, "l1")
        self.l2 = _validate_penalty(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        penalty = 0.0
        if self.l1:
            penalty = ops.add(penalty, ops.multiply(self.l1, ops.sum(ops.absolute(x))))
        if self.l2:
            penalty = ops.add(penalty, ops.multiply(self.l2, ops.sum(ops.square(x))))
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns of a 2D weight towards orthogonality:
    ``factor * 0.5 * mean over pairs of |cosine similarity|``."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _validate_penalty(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError(
                f'Invalid value for argument `mode`. Expected one of {{"rows", "columns"}}. Received: mode={mode}'
            )
        self.mode = mode

    def __call__(self, inputs):
        if len(inputs.shape) != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape={inputs.shape}")
        if self.mode == "rows":
            unit = ops.normalize(inputs, axis=1)
            product = ops.matmul(unit, ops.transpose(unit))
            size = inputs.shape[0]
        else:
            unit = ops.normalize(inputs, axis=0)
            product = ops.matmul(ops.transpose(unit), unit)
            size = inputs.shape[1]
        off_diagonal = ops.multiply(product, (1.0 - np.eye(size)).astype(str(product.dtype)))
        pairs = size * (size - 1.0) / 2.0
        return ops.multiply(self.factor * 0.5 / pairs, ops.sum(ops.absolute(off_diagonal)))

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


l1 = L1
l2 = L2
l1l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_BY_NAME = {
    "Regularizer": Regularizer,
    "regularizer": Regularizer,
    "L1": L1,
    "l1": L1,
    "L2": L2,
    "l2": L2,
    "L1L2": L1L2,
    "l1l2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "orthogonal_regularizer": OrthogonalRegularizer,
}


def serialize(regularizer) -> dict | None:
    """Keras' serialized form: ``{"module": "keras.regularizers", "class_name": "L2", ...}``."""

    return serialize_keras_object(regularizer)


def deserialize(config, custom_objects=None):
    """A regularizer from its serialized form (custom ones through ``custom_objects``)."""

    return deserialize_keras_object(config, custom_objects=custom_objects, module_objects=_BY_NAME)


def get(identifier):
    """A regularizer from ``None``, a name (``"l2"``), a config dict, a class, an instance or a callable."""

    return get_from_identifier(identifier, _BY_NAME, "regularizer")


register_namespace("keras.regularizers", globals())
