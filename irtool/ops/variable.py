"""Variables: the weights layers own. A shared layer's calls all read the same Variable."""

from __future__ import annotations

import numpy as np

from irtool.ir.dtypes import standardize_dtype
from irtool.ir.naming import uniquify


class Variable:
    """A named, mutable array with Keras' attributes.

    ``name`` is the short name (``kernel``), ``path`` the scoped one (``dense/kernel``).
    In traced code a Variable is an operand like a tensor: the graph reads its current
    value at run time, so ``assign`` is seen by every model that uses it.

    >>> v = Variable(np.zeros((2, 3)), name="kernel", path="dense/kernel")
    >>> v.assign(np.ones((2, 3))); float(v.numpy().sum())
    6.0
    """

    __slots__ = ("_value", "name", "path", "trainable", "regularizer", "constraint", "__weakref__")

    def __init__(self, value, dtype=None, trainable: bool = True, name: str | None = None, path: str | None = None):
        dtype = standardize_dtype(dtype if dtype is not None else getattr(value, "dtype", None))
        self._value = np.array(value, dtype=dtype, order="C")
        self.name = name or uniquify("variable")
        self.path = path or self.name
        self.trainable = bool(trainable)
        self.regularizer = None  # set by Layer.add_weight; optimizers apply `constraint` after each step
        self.constraint = None

    @property
    def shape(self) -> tuple:
        return self._value.shape

    @property
    def dtype(self) -> str:
        return _dtype_name(self._value.dtype)

    @property
    def ndim(self) -> int:
        return self._value.ndim

    @property
    def value(self) -> np.ndarray:
        return self._value

    def numpy(self) -> np.ndarray:
        return self._value.copy()

    def assign(self, value) -> None:
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(
                f"The shape of the target variable and the shape of the target value in "
                f"`variable.assign(value)` must match. variable.shape={self._value.shape}, "
                f"Received: value.shape={value.shape}. Target variable: {self!r}"
            )
        self._value[...] = value

    def assign_add(self, value) -> None:
        """``assign(value + delta)`` in place (a metric's running total, a counter)."""
        self.assign(self._value + np.asarray(value, dtype=self._value.dtype))

    def assign_sub(self, value) -> None:
        self.assign(self._value - np.asarray(value, dtype=self._value.dtype))

    def __array__(self, dtype=None, copy=None):
        return self._value if dtype is None else self._value.astype(dtype)

    def __repr__(self) -> str:
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, value={self._value!r}>"

    __hash__ = object.__hash__


_DTYPE_NAMES: dict = {}


def _dtype_name(dtype) -> str:
    """``dtype.name`` is computed in Python by NumPy 2 on every access; cache it."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = dtype.name
    return name
