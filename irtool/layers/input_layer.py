"""InputLayer and ``Input()``: where a functional model's symbolic tensors start."""

from __future__ import annotations

from irtool.ir import naming
from irtool.ir.dtypes import standardize_dtype
from irtool.layers.layer import Layer
from irtool.ops.core import SymbolicTensor
from irtool.ops.operation import LayerCall


def standardize_shape(shape) -> tuple:
    """``shape`` as a tuple of non-negative ints and ``None``s, or Keras' ValueError.

    As in Keras, 0 is a valid dimension, while negative dimensions and dimensions that are
    strings or floats (even ``2.0``) are refused; NumPy integers become ints.
    """
    if shape is None:
        raise ValueError("Undefined shapes are not supported.")
    if not hasattr(shape, "__iter__"):
        raise ValueError(f"Cannot convert '{shape}' to a shape.")
    shape = tuple(shape)
    dims = []
    for d in shape:
        if d is None:
            dims.append(None)
            continue
        if isinstance(d, (str, float)):
            raise ValueError(
                f"Cannot convert '{shape}' to a shape. Found invalid dimension '{d}' of type '{type(d)}'. "
            )
        try:
            d = int(d)
        except Exception as error:
            raise ValueError(
                f"Cannot convert '{shape}' to a shape. Found invalid dimension '{d}' of type '{type(d)}'. "
            ) from error
        if d < 0:
            raise ValueError(f"Cannot convert '{shape}' to a shape. Negative dimensions are not allowed.")
        dims.append(d)
    return tuple(dims)


class InputLayer(Layer):
    """A layer with no computation: it owns one symbolic tensor of a given batch shape."""

    def __init__(
        self,
        shape=None,
        batch_size=None,
        dtype=None,
        sparse=None,
        batch_shape=None,
        input_tensor=None,
        optional=False,
        name=None,
        ragged=None,
        **kwargs,
    ):
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if batch_size is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `batch_size` and `batch_shape` at the same time.")
        if shape is None and batch_shape is None and input_tensor is None:
            raise ValueError("You must pass a `shape` argument.")
        if sparse:
            raise ValueError("`sparse=True` is not supported with the irtool backend.")
        if ragged:
            raise ValueError("`ragged=True` is not supported with the irtool backend.")
        super().__init__(name=name, dtype=dtype, **kwargs)
        if input_tensor is not None:
            batch_shape = input_tensor.shape
        elif batch_shape is None:
            # irtool also takes a bare int (`Input(3)`), which Keras refuses.
            shape = standardize_shape((shape,) if isinstance(shape, int) else shape)
            batch_shape = (batch_size,) + shape
        self._batch_shape = standardize_shape(batch_shape)
        self.optional = optional
        self.built = True
        tensor_name = name if name is not None else naming.uniquify("keras_tensor")
        tensor = SymbolicTensor(self._batch_shape, standardize_dtype(dtype), name=tensor_name)
        call = LayerCall(self, (), {})
        call.outputs = tensor
        call.output_tensors = [tensor]
        tensor._keras_history = (call, 0)
        self._inbound_nodes.append(call)
        self._tensor = tensor

    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    def call(self, inputs):
        return inputs

    def get_config(self) -> dict:
        return {
            "batch_shape": list(self._batch_shape),
            "dtype": self.dtype,
            "sparse": False,
            "ragged": False,
            "name": self.name,
            "optional": self.optional,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def Input(
    shape=None,
    batch_size=None,
    dtype=None,
    sparse=None,
    batch_shape=None,
    name=None,
    tensor=None,
    optional=False,
    ragged=None,
):
    """A symbolic tensor to start a functional model from.

    ``shape`` excludes the batch axis: ``Input((32,)).shape == (None, 32)``.

    >>> x = Input(shape=(784,), name="img")
    >>> x.shape, x.dtype, x.name
    ((None, 784), 'float32', 'img')
    """
    layer = InputLayer(
        shape=shape,
        batch_size=batch_size,
        dtype=dtype,
        sparse=sparse,
        batch_shape=batch_shape,
        name=name,
        input_tensor=tensor,
        optional=optional,
        ragged=ragged,
    )
    return layer._tensor
