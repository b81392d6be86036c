"""Helpers of the optimizers: the optimizer-variable class, gradient clipping by norm, scratch buffers
and the checks ``apply`` makes on its arguments."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from irtool.ops.variable import Variable

__all__ = ["StateVariable", "clip_by_global_norm", "global_norm"]


class StateVariable(Variable):
    """An optimizer variable (``iteration``, ``learning_rate``, slots): a :class:`Variable` that also
    converts with ``int()``/``float()`` and formats like its value, as Keras' scalar variables do."""

    __slots__ = ()

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def __format__(self, spec: str) -> str:
        return format(self._value.item() if self._value.ndim == 0 else self._value, spec)


def global_norm(arrays) -> float:
    """``sqrt(sum of squares)`` over all the (non-None) arrays, accumulated in float64."""
    total = 0.0
    for a in arrays:
        if a is not None:
            flat = a.reshape(-1)
            total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_by_global_norm(arrays, clip_norm: float) -> list:
    """Scale all arrays by ``clip_norm / max(global_norm, clip_norm)``; a non-finite norm gives NaNs
    (as Keras' ``clip_by_global_norm``). Arrays are not modified in place."""
    norm = global_norm(arrays)
    if not math.isfinite(norm):
        scale = math.nan
    elif norm > clip_norm:
        scale = clip_norm / norm
    else:
        return list(arrays)
    return [a if a is None else a * np.asarray(scale, dtype=a.dtype) for a in arrays]


def scratch_views(variables, count: int) -> list:
    """``count`` scratch arrays per variable (same shape/dtype), as views of shared flat buffers."""
    sizes: dict = {}
    for v in variables:
        dtype = v._value.dtype
        sizes[dtype] = max(sizes.get(dtype, 0), v._value.size)
    buffers = {dtype: [np.empty(n, dtype) for _ in range(count)] for dtype, n in sizes.items()}
    return [tuple(b[: v._value.size].reshape(v._value.shape) for b in buffers[v._value.dtype]) for v in variables]


def check_learning_rate(value) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, or a callable (that "
            "takes in the current iteration value and returns the corresponding learning rate value). "
            f"Received instead: learning_rate={value}"
        )
    return float(value)


def as_gradient(g, v) -> np.ndarray:
    """The gradient as an ndarray of the variable's dtype and shape (no copy when it already is one)."""
    value = v._value
    if type(g) is not np.ndarray or g.dtype != value.dtype:
        g = np.asarray(g, dtype=value.dtype)
    if g.shape != value.shape:
        raise ValueError(
            f"Gradient shape {g.shape} does not match the shape {value.shape} of variable {getattr(v, 'path', v)}."
        )
    return g


def filter_empty_gradients(grads, variables):
    kept = [(g, v) for g, v in zip(grads, variables) if g is not None]
    if not kept:
        raise ValueError("No gradients provided for any variable.")
    missing = [getattr(v, "path", v.name) for g, v in zip(grads, variables) if g is None]
    warnings.warn(
        f"Gradients do not exist for variables {missing} when minimizing the loss. If using `model.compile()`, did "
        "you forget to provide a `loss` argument?",
        stacklevel=3,
    )
    return [g for g, _ in kept], [v for _, v in kept]
