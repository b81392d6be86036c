"""Tensor specs: the static shape and dtype of a value in the IR."""

from __future__ import annotations

from typing import NamedTuple


class TensorSpec(NamedTuple):
    """Shape (a tuple whose unknown dims are ``None``) and dtype string of a value."""

    shape: tuple
    dtype: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}".replace("None", "?")


def format_shape(shape) -> str:
    """``(None, 64)`` as Keras prints it."""
    return str(tuple(shape))


def broadcast_shapes(a: tuple, b: tuple) -> tuple:
    """NumPy broadcasting on static shapes with ``None`` for unknown dims.

    Raises ValueError naming both shapes when they cannot broadcast.
    """
    ndim = max(len(a), len(b))
    a = (1,) * (ndim - len(a)) + tuple(a)
    b = (1,) * (ndim - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif x is None:
            out.append(y)
        elif y is None:
            out.append(x)
        else:
            raise ValueError(f"Cannot broadcast shapes {a} and {b}: incompatible dimensions {x} and {y}.")
    return tuple(out)


def normalize_axis(axis: int, ndim: int, what: str = "axis") -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"`{what}`={axis} is out of bounds for a tensor of rank {ndim}.")
    return axis % ndim if ndim else 0
