"""Activation functions by Keras name, written in ``irtool.ops``.

>>> from irtool import activations
>>> activations.get("relu").__name__
'relu'
"""

from __future__ import annotations

from irtool import ops


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
    return ops.multiply(x, ops.hard_sigmoid(x))


hard_swish = hard_silu


def exponential(x):
    return ops.exp(x)


def linear(x):
    return x


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
    )
}
_ALL.update({"swish": silu, "hard_swish": hard_silu})


def get(identifier):
    """A callable activation from a name, ``None`` (linear) or a callable."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        identifier = identifier.get("config", identifier.get("class_name"))
    if isinstance(identifier, str) and identifier in _ALL:
        return _ALL[identifier]
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


def serialize(activation) -> str:
    for name, fn in _ALL.items():
        if fn is activation:
            return "swish" if name == "swish" else name
    return getattr(activation, "__name__", str(activation))
