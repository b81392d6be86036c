"""Keras 3 metrics (``keras.metrics``): accuracy, regression, probabilistic, hinge and
confusion-matrix metrics, ``get``/``serialize``/``deserialize`` and ``resolve_metric``, the rule
``compile(metrics=...)`` uses (``"accuracy"`` picked by shapes). Metrics run in NumPy, eagerly.
"""

from __future__ import annotations

import inspect

import numpy as np

from irtool.ir.naming import to_snake_case
from irtool.train import loss_functions as F
from irtool.train.confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
)
from irtool.train.loss_functions import squeeze_or_expand_to_same_rank
from irtool.train.losses import deserialize_object, is_binary_or_sparse_categorical, object_name, serialize_object
from irtool.train.metric import Mean, MeanMetricWrapper, Metric, Sum, _wrapper
from irtool.train.metric_functions import (  # noqa: F401 - keras.metrics' functions
    FUNCTIONS,
    _array,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    cosine_similarity,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)

# ---------------------------------------------------------------------------------------
# Built-in mean metrics

Accuracy = _wrapper("Accuracy", accuracy, "accuracy", "up")
BinaryAccuracy = _wrapper("BinaryAccuracy", binary_accuracy, "binary_accuracy", "up", [("threshold", 0.5)])
CategoricalAccuracy = _wrapper("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy", "up")
SparseCategoricalAccuracy = _wrapper(
    "SparseCategoricalAccuracy", sparse_categorical_accuracy, "sparse_categorical_accuracy", "up"
)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k
        self._direction = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        super().__init__(
            sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k, from_sorted_ids=from_sorted_ids
        )
        self.k = k
        self.from_sorted_ids = from_sorted_ids
        self._direction = "up"

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config


MeanSquaredError = _wrapper("MeanSquaredError", F.mean_squared_error, "mean_squared_error", "down")
MeanAbsoluteError = _wrapper("MeanAbsoluteError", F.mean_absolute_error, "mean_absolute_error", "down")
MeanAbsolutePercentageError = _wrapper(
    "MeanAbsolutePercentageError", F.mean_absolute_percentage_error, "mean_absolute_percentage_error", "down"
)
MeanSquaredLogarithmicError = _wrapper(
    "MeanSquaredLogarithmicError", F.mean_squared_logarithmic_error, "mean_squared_logarithmic_error", "down"
)


CosineSimilarity = _wrapper("CosineSimilarity", cosine_similarity, "cosine_similarity", "up", [("axis", -1)], [])
LogCoshError = _wrapper("LogCoshError", F.log_cosh, "logcosh", "down")
Hinge = _wrapper("Hinge", F.hinge, "hinge", "down")
SquaredHinge = _wrapper("SquaredHinge", F.squared_hinge, "squared_hinge", "down")
CategoricalHinge = _wrapper("CategoricalHinge", F.categorical_hinge, "categorical_hinge", "down")
KLDivergence = _wrapper("KLDivergence", F.kl_divergence, "kl_divergence", "down")
Poisson = _wrapper("Poisson", F.poisson, "poisson", "down")
BinaryCrossentropy = _wrapper(
    "BinaryCrossentropy",
    F.binary_crossentropy,
    "binary_crossentropy",
    "down",
    [("from_logits", False), ("label_smoothing", 0)],
)
CategoricalCrossentropy = _wrapper(
    "CategoricalCrossentropy",
    F.categorical_crossentropy,
    "categorical_crossentropy",
    "down",
    [("from_logits", False), ("label_smoothing", 0), ("axis", -1)],
)
_SparseCE = _wrapper(
    "SparseCategoricalCrossentropy",
    F.sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    "down",
    [("from_logits", False), ("ignore_class", None), ("axis", -1)],
)


class SparseCategoricalCrossentropy(_SparseCE):
    """With ``ignore_class`` and a ``sample_weight``, ignored samples get weight 0 (Keras applies
    the loss's mask to the weights only when there are weights)."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        values, valid = F.sparse_categorical_crossentropy_with_mask(y_true, y_pred, **self._fn_kwargs)
        return Mean.update_state(self, values, sample_weight=sample_weight, _mask=valid)


class RootMeanSquaredError(Mean):
    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = squeeze_or_expand_to_same_rank(_array(y_true, self.dtype), _array(y_pred, self.dtype))
        return super().update_state(np.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self):
        return np.sqrt(super().result())


ALL_OBJECTS = [
    Metric,
    Mean,
    Sum,
    MeanMetricWrapper,
    MeanSquaredError,
    RootMeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    CosineSimilarity,
    LogCoshError,
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
    KLDivergence,
    Poisson,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
]
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({to_snake_case(cls.__name__): cls for cls in ALL_OBJECTS})
ALL_OBJECTS_DICT.update(
    {
        "bce": BinaryCrossentropy,
        "BCE": BinaryCrossentropy,
        "mse": MeanSquaredError,
        "MSE": MeanSquaredError,
        "mae": MeanAbsoluteError,
        "MAE": MeanAbsoluteError,
        "mape": MeanAbsolutePercentageError,
        "MAPE": MeanAbsolutePercentageError,
        "msle": MeanSquaredLogarithmicError,
        "MSLE": MeanSquaredLogarithmicError,
    }
)


def serialize(metric):
    """Keras' config dict of a ``Metric`` (``{"module": "keras.metrics", "class_name", "config", ...}``)."""
    return serialize_object(metric, "keras.metrics", ALL_OBJECTS_DICT)


def deserialize(config, custom_objects=None):
    return deserialize_object(config, {**FUNCTIONS, **ALL_OBJECTS_DICT}, custom_objects, "metric")


def get(identifier):
    """A ``Metric`` instance or metric function from a name, config dict, class, instance or callable."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj() if inspect.isclass(obj) else obj
    raise ValueError(f"Could not interpret metric identifier: {identifier}")


def resolve_metric(identifier, y_true_shape, y_pred_shape):
    """What ``compile(metrics=[...])`` makes of one entry for one output: a ``Metric``.

    ``"accuracy"``/``"acc"`` (any case) become ``BinaryAccuracy`` when ``y_pred.shape[-1] == 1``,
    ``SparseCategoricalAccuracy`` when ``y_true`` has lower rank or a last dim of 1 against several
    classes, else ``CategoricalAccuracy``. Shapes may be tuples, arrays or tensors. A string keeps
    its spelling as the metric's name (``"acc"`` logs as ``acc``, ``"mse"`` as ``mse``); functions
    are wrapped in ``MeanMetricWrapper``.
    """
    if identifier is None:
        raise ValueError("Expected metric, received `None`")
    if str(identifier).lower() not in ("accuracy", "acc"):
        metric = get(identifier)
    else:
        is_binary, is_sparse = is_binary_or_sparse_categorical(y_true_shape, y_pred_shape)
        if is_binary:
            metric = BinaryAccuracy(name=str(identifier))
        elif is_sparse:
            metric = SparseCategoricalAccuracy(name=str(identifier))
        else:
            metric = CategoricalAccuracy(name=str(identifier))
    name = identifier if isinstance(identifier, str) else object_name(metric)
    if not isinstance(metric, Metric):
        metric = MeanMetricWrapper(metric)
    metric.name = name
    return metric
