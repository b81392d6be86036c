"""Activation functions by Keras name, written in ``irtool.ops``.

>>> from irtool import activations
>>> activations.get("relu").__name__
'relu'
"""

from __future__ import annotations

from irtool import ops
from irtool.serialization.keras_objects import deserialize_keras_object, register_namespace, serialize_keras_object
from irtool.serialization.object_registration import get_registered_object


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    if threshold == 0.0 and max_value is None:
        return ops.leaky_relu(x, negative_slope)
    y = ops.where(ops.greater(x, threshold), x, ops.multiply(ops.subtract(x, threshold), negative_slope))
    return ops.minimum(y, max_value) if max_value is not None else y


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope)


def relu6(x):
    return ops.relu6(x)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return ops.tanh(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis=axis)


def gelu(x, approximate=False):
    return ops.gelu(x, approximate=approximate)


def silu(x):
    return ops.silu(x)


swish = silu


def elu(x, alpha=1.0):
    return ops.elu(x, alpha)


def selu(x):
    return ops.selu(x)


def softplus(x):
    return ops.softplus(x)


def softsign(x):
    return ops.softsign(x)


def hard_sigmoid(x):
    return ops.hard_sigmoid(x)


def hard_silu(x):
    return ops.hard_silu(x)


hard_swish = hard_silu


def exponential(x):
    return ops.exp(x)


def linear(x):
    return x


def celu(x, alpha=1.0):
    """``x`` for ``x > 0``, ``alpha * (exp(x / alpha) - 1)`` otherwise."""
    return ops.celu(x, alpha=alpha)


def glu(x, axis=-1):
    """``a * sigmoid(b)`` for the two halves ``a, b`` of ``x`` along ``axis`` (halves that axis)."""
    return ops.glu(x, axis=axis)


def hard_shrink(x, threshold=0.5):
    """``x`` where ``|x| > threshold``, else 0."""
    return ops.hard_shrink(x, threshold=threshold)


def hard_tanh(x):
    """``clip(x, -1, 1)``."""
    return ops.hard_tanh(x)


def log_sigmoid(x):
    """``log(sigmoid(x))``, stable for large ``|x|``."""
    return ops.log_sigmoid(x)


def mish(x):
    """``x * tanh(softplus(x))`` (Misra, 2019)."""
    return ops.multiply(x, ops.tanh(ops.softplus(x)))


def soft_shrink(x, threshold=0.5):
    """``x -/+ threshold`` outside ``[-threshold, threshold]``, else 0."""
    return ops.soft_shrink(x, threshold=threshold)


def sparse_plus(x):
    """0, then ``(x + 1)**2 / 4`` on ``(-1, 1)``, then ``x``: a softplus with exact zeros."""
    return ops.sparse_plus(x)


def sparse_sigmoid(x):
    """0, then ``(x + 1) / 2`` on ``(-1, 1)``, then 1."""
    return ops.sparse_sigmoid(x)


def sparsemax(x, axis=-1):
    """Projection onto the probability simplex along ``axis``: a softmax with exact zeros."""
    return ops.sparsemax(x, axis=axis)


def squareplus(x, b=4):
    """``(x + sqrt(x**2 + b)) / 2``."""
    return ops.squareplus(x, b=b)


def tanh_shrink(x):
    """``x - tanh(x)``."""
    return ops.tanh_shrink(x)


def threshold(x, threshold, default_value):
    """``x`` where ``x > threshold``, else ``default_value``."""
    return ops.threshold(x, threshold, default_value)


_ALL = {
    f.__name__: f
    for f in (
        relu,
        leaky_relu,
        relu6,
        sigmoid,
        tanh,
        softmax,
        log_softmax,
        gelu,
        silu,
        elu,
        selu,
        softplus,
        softsign,
        hard_sigmoid,
        hard_silu,
        exponential,
        linear,
        celu,
        glu,
        hard_shrink,
        hard_tanh,
        log_sigmoid,
        mish,
        soft_shrink,
        sparse_plus,
        sparse_sigmoid,
        sparsemax,
        squareplus,
        tanh_shrink,
        threshold,
    )
}
_ALL.update({"swish": silu, "hard_swish": hard_silu})
ALL_OBJECTS = _ALL


def get(identifier):
    """A callable activation from ``None`` (linear), a name, a serialized dict or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _ALL.get(identifier)
        if obj is None:
            obj = get_registered_object(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


def serialize(activation):
    """Keras' form inside layer configs: the name of a built-in activation (``"relu"``), else
    the serialized function or object (``{"module", "class_name", "config", "registered_name"}``)."""
    for fn in _ALL.values():
        if fn is activation:
            return fn.__name__

    return serialize_keras_object(activation)


def deserialize(config, custom_objects=None):
    """An activation from a name or a serialized function/object (custom ones through ``custom_objects``)."""
    if isinstance(config, str) and config in _ALL:
        return _ALL[config]

    obj = deserialize_keras_object(config, custom_objects=custom_objects, module_objects=_ALL, kind="activation")
    if not callable(obj):
        raise ValueError(f"Could not interpret activation function identifier: {config}")
    return obj


register_namespace("keras.activations", {**globals(), **ALL_OBJECTS})  # aliases: swish...
