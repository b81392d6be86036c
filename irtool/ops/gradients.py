"""Helpers shared by the primitives' ``vjp`` rules (reverse-mode derivatives in NumPy).

Contract of ``Primitive.vjp(cotangents, inputs, outputs, **attrs)``: ``cotangents`` holds the
gradient of the loss with respect to each output (``None`` where no gradient flows),
``inputs``/``outputs`` are the forward pass' arrays, and it returns one gradient per input,
shaped like that input, or ``None`` for inputs that are not differentiable (integer indices,
booleans, shapes).
"""

from __future__ import annotations

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched to reach its shape."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def is_differentiable(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)
