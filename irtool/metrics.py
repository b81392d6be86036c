"""``keras.metrics``: metric classes, metric functions and ``get``/``serialize``/``deserialize``.

Everything lives in ``irtool.train.metric`` (base classes), ``irtool.train.metrics`` and
``irtool.train.confusion_metrics``. Metrics are stateful and run in NumPy.
"""

from irtool.serialization.keras_objects import register_namespace
from irtool.train.loss_functions import (  # noqa: F401 - the public namespace
    binary_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
    hinge,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
from irtool.train.metrics import (  # noqa: F401 - the public namespace
    AUC,
    Accuracy,
    BinaryAccuracy,
    BinaryCrossentropy,
    CategoricalAccuracy,
    CategoricalCrossentropy,
    CategoricalHinge,
    CosineSimilarity,
    FalseNegatives,
    FalsePositives,
    Hinge,
    KLDivergence,
    LogCoshError,
    Mean,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanMetricWrapper,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Metric,
    Poisson,
    Precision,
    Recall,
    RootMeanSquaredError,
    SparseCategoricalAccuracy,
    SparseCategoricalCrossentropy,
    SparseTopKCategoricalAccuracy,
    SquaredHinge,
    Sum,
    TopKCategoricalAccuracy,
    TrueNegatives,
    TruePositives,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    deserialize,
    get,
    resolve_metric,
    serialize,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)

__all__ = [name for name in dir() if not name.startswith("_")]

register_namespace("keras.metrics", globals())
