"""Keras' loss functions (``keras.losses.mean_squared_error``...), written only in ``irtool.ops``.

Each takes ``(y_true, y_pred, ...)`` and returns per-sample losses (the last axis reduced). Being
written in ops, they compute eagerly on NumPy arrays and record primitives on symbolic tensors, so
the trainer traces them into the training graph and differentiates them like any layer. The
formulas (epsilon clipping, label smoothing, the stable logits forms) follow Keras 3's
``losses/losses.py`` and its backends' ``nn.*_crossentropy``.
"""

from __future__ import annotations

import warnings

import numpy as np

from irtool import ops
from irtool.ir.dtypes import standardize_dtype
from irtool.ir.spec import normalize_axis

EPSILON = 1e-7  # keras.backend.epsilon()
_LOG2 = float(np.log(2.0))


def cast(x, dtype):
    """``ops.cast`` that returns ``x`` itself when it already has ``dtype`` (a no-op cast at the top
    level would be recorded as an operation; on a mask tensor, which has no layer history, it would
    make the mask its own producer)."""
    dtype = standardize_dtype(dtype)
    return x if str(x.dtype) == dtype else ops.cast(x, dtype)


def convert(x, dtype=None):
    """``x`` as a tensor (array or symbolic), cast to ``dtype`` when given. Python floats and
    lists become float32 (Keras' floatx), not NumPy's float64."""
    if ops.is_symbolic(x):
        return x if dtype is None else cast(x, dtype)
    plain = not isinstance(x, np.ndarray) and not hasattr(x, "_value")
    x = ops.convert_to_tensor(x)
    if dtype is None and plain and x.dtype == np.float64:
        dtype = "float32"
    return x if dtype is None else cast(x, dtype)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Squeeze or expand the last axis of one operand when the ranks differ by exactly one."""
    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.expand_dims(x2, -1)
        else:
            x1 = ops.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.expand_dims(x1, -1)
        else:
            x2 = ops.squeeze(x2, -1)
    return x1, x2


def divide_no_nan(x, y):
    """``x / y``, and 0 where ``y == 0`` (no inf/NaN reaches either branch, nor its gradient)."""
    zero = ops.equal(y, 0.0)
    return ops.where(zero, 0.0, ops.divide(x, ops.where(zero, 1.0, y)))


def _pair(y_true, y_pred):
    y_pred = convert(y_pred)
    return convert(y_true, y_pred.dtype), y_pred


def _same_shape(target_shape, output_shape, what="the same shape"):
    a, b = tuple(target_shape), tuple(output_shape)
    if len(a) != len(b) or any(x is not None and y is not None and x != y for x, y in zip(a, b)):
        raise ValueError(
            f"Arguments `target` and `output` must have {what}. Received: target.shape={a}, output.shape={b}"
        )


# ---------------------------------------------------------------------------------------
# Regression


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    first_log = ops.log(ops.maximum(y_pred, EPSILON) + 1.0)
    second_log = ops.log(ops.maximum(y_true, EPSILON) + 1.0)
    return ops.mean(ops.square(first_log - second_log), axis=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    y_pred = ops.normalize(y_pred, axis=axis)
    y_true = ops.normalize(y_true, axis=axis)
    return -ops.sum(y_true * y_pred, axis=axis)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    delta = float(delta)
    error = ops.subtract(y_pred, y_true)
    abs_error = ops.abs(error)
    return ops.mean(
        ops.where(abs_error <= delta, 0.5 * ops.square(error), delta * abs_error - 0.5 * delta * delta),
        axis=-1,
    )


def log_cosh(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(*_pair(y_true, y_pred))
    x = y_pred - y_true
    # log(cosh(x)) = x + log(1 + exp(-2x)) - log(2), stable for large |x|.
    return ops.mean(x + ops.softplus(x * -2.0) - _LOG2, axis=-1)


# ---------------------------------------------------------------------------------------
# Hinge


def _hinge_labels(y_true):
    """Labels that are all 0/1 become -1/1 (a data-dependent choice, made with ``where``)."""
    binary = ops.logical_or(ops.equal(y_true, 0.0), ops.equal(y_true, 1.0))
    all_binary = ops.greater(ops.min(ops.cast(binary, "float32")), 0.5)
    return ops.where(all_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


# ---------------------------------------------------------------------------------------
# Probabilistic


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = ops.clip(y_true, EPSILON, 1)
    y_pred = ops.clip(y_pred, EPSILON, 1)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


def _log_probs(output, from_logits, axis):
    """log-probabilities: ``log_softmax`` of logits, or ``log(clip(p / sum(p)))`` of probabilities."""
    if from_logits:
        return ops.log_softmax(output, axis=axis)
    output = output / ops.sum(output, axis=axis, keepdims=True)
    return ops.log(ops.clip(output, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    y_true, y_pred = _pair(y_true, y_pred)
    if y_pred.shape[-1] == 1:
        warnings.warn(
            "In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, num_classes) "
            f"with num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}. "
            "Consider using 'binary_crossentropy' if you only have 2 classes.",
            SyntaxWarning,
            stacklevel=2,
        )
    if label_smoothing:
        num_classes = y_true.shape[-1] if y_true.shape[-1] is not None else y_pred.shape[-1]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    _same_shape(y_true.shape, y_pred.shape)
    if len(y_true.shape) < 1:
        raise ValueError(
            "Arguments `target` and `output` must be at least rank 1. Received: "
            f"target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}"
        )
    return -ops.sum(y_true * _log_probs(y_pred, from_logits, axis), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    res, valid = sparse_categorical_crossentropy_with_mask(y_true, y_pred, from_logits, ignore_class, axis)
    if valid is not None and ops.is_symbolic(res):
        res._keras_mask = valid
    return res


def sparse_categorical_crossentropy_with_mask(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """The per-sample losses and, with ``ignore_class``, the mask of the counted samples (Keras
    attaches that mask to the result so the reduction averages over valid entries only)."""
    y_pred = convert(y_pred)
    y_true = convert(y_true)
    if len(y_pred.shape) < 1:
        raise ValueError(f"Argument `output` must be at least rank 1. Received: output.shape={tuple(y_pred.shape)}")
    class_axis = normalize_axis(axis, len(y_pred.shape))
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[axis] == 1:
        y_true = ops.squeeze(y_true, axis)
    expected = tuple(d for i, d in enumerate(y_pred.shape) if i != class_axis)
    _same_shape(y_true.shape, expected, "the same shape up until the last dimension")
    valid = None
    if ignore_class is not None:
        valid = ops.not_equal(cast(y_true, y_pred.dtype), float(ignore_class))
        y_true = ops.where(valid, y_true, 0)
        # Keras zeroes ignored predictions; 1.0 gives the same (masked) result without 0/0.
        y_pred = ops.where(ops.expand_dims(valid, class_axis), y_pred, 1.0)
    num_classes = y_pred.shape[class_axis]
    if num_classes is None:
        raise ValueError(
            f"sparse_categorical_crossentropy needs a known number of classes. y_pred.shape={y_pred.shape}"
        )
    target = ops.one_hot(cast(y_true, "int32"), num_classes, axis=class_axis, dtype=y_pred.dtype)
    res = -ops.sum(target * _log_probs(y_pred, from_logits, class_axis), axis=class_axis)
    if valid is not None:
        res = ops.where(valid, res, 0.0)
    return res, valid


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    _same_shape(y_true.shape, y_pred.shape)
    if from_logits:
        # max(x, 0) - x*t + log(1 + exp(-|x|)) == softplus(x) - x*t (PyTorch's stable form).
        bce = ops.softplus(y_pred) - y_pred * y_true
    else:
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(bce, axis=axis)
