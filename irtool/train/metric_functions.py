"""Keras' metric functions (per-sample values, float32): the accuracies and cosine similarity,
and ``FUNCTIONS``, every function a ``MeanMetricWrapper`` config may name (these and the loss
functions). The metric classes are in ``metric.py`` and ``metrics.py``."""

from __future__ import annotations

import numpy as np

from irtool.train import loss_functions as F
from irtool.train.loss_functions import squeeze_or_expand_to_same_rank


def _array(x, dtype=None) -> np.ndarray:
    x = np.asarray(getattr(x, "_value", x))
    return x if dtype is None else x.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------
# Accuracy functions (per-sample match values, float32)


def accuracy(y_true, y_pred):
    y_pred = _array(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(_array(y_true, y_pred.dtype), y_pred)
    return (y_true == y_pred).astype("float32")


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = squeeze_or_expand_to_same_rank(_array(y_true), _array(y_pred))
    y_pred = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == y_pred).astype("float32")


def categorical_accuracy(y_true, y_pred):
    y_true = np.argmax(_array(y_true), axis=-1)
    y_pred = _array(y_pred)
    reshape_matches = False
    shape = y_true.shape
    if y_true.ndim == y_pred.ndim:
        y_true = np.squeeze(y_true, -1)
        reshape_matches = True
    matches = (y_true == np.argmax(y_pred, axis=-1)).astype("float32")
    return matches.reshape(shape) if reshape_matches else matches


def sparse_categorical_accuracy(y_true, y_pred):
    y_pred = _array(y_pred)
    y_true = _array(y_true, y_pred.dtype)
    shape = y_true.shape
    reshape_matches = False
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.squeeze(y_true, -1)
        reshape_matches = True
    matches = (y_true == np.argmax(y_pred, axis=-1).astype(y_true.dtype)).astype("float32")
    if reshape_matches:
        matches = matches.reshape(shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return matches


def _in_top_k(targets, predictions, k):
    """Whether ``predictions[target]`` is at least the k-th largest prediction (ties count)."""
    k = min(int(k), predictions.shape[-1])
    kth = np.sort(predictions, axis=-1)[:, -k]
    picked = np.take_along_axis(predictions, targets.astype("int64")[:, None], axis=-1)[:, 0]
    return picked >= kth


def _top_k_matches(y_true, y_pred, k):
    shape = y_true.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    matches = _in_top_k(y_true.reshape(-1), y_pred, k).astype("float32")
    return matches.reshape(shape) if len(shape) > 1 else matches


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = _array(y_pred)
    return _top_k_matches(np.argmax(_array(y_true, y_pred.dtype), axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    y_pred = _array(y_pred)
    y_true = _array(y_true, y_pred.dtype if from_sorted_ids else "int32")
    if not from_sorted_ids:
        return _top_k_matches(y_true, y_pred, k)
    shape = y_true.shape
    y_pred = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.ndim > 2 else y_pred
    matches = np.any(y_true.reshape(-1)[:, None] == y_pred[:, :k], axis=1).astype("float32")
    return matches.reshape(shape) if len(shape) > 1 else matches


def cosine_similarity(y_true, y_pred, axis=-1):
    """The cosine of the angle between ``y_true`` and ``y_pred`` (the loss is its negative)."""
    return -F.cosine_similarity(y_true, y_pred, axis=axis)


_LOSS_FUNCTIONS = (
    F.mean_squared_error,
    F.mean_absolute_error,
    F.mean_absolute_percentage_error,
    F.mean_squared_logarithmic_error,
    F.cosine_similarity,
    F.huber,
    F.log_cosh,
    F.hinge,
    F.squared_hinge,
    F.categorical_hinge,
    F.kl_divergence,
    F.poisson,
    F.binary_crossentropy,
    F.categorical_crossentropy,
    F.sparse_categorical_crossentropy,
)
FUNCTIONS = {
    fn.__name__: fn
    for fn in _LOSS_FUNCTIONS
    + (
        accuracy,
        binary_accuracy,
        categorical_accuracy,
        cosine_similarity,
        sparse_categorical_accuracy,
        top_k_categorical_accuracy,
        sparse_top_k_categorical_accuracy,
    )
}


# ---------------------------------------------------------------------------------------
# Lookup, serialization and compile's resolution rule
