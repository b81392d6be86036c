"""``keras.losses``: loss classes, loss functions, aliases and ``get``/``serialize``/``deserialize``.

Everything lives in ``irtool.train.losses`` (classes, reductions) and
``irtool.train.loss_functions`` (the math, written in ``irtool.ops``).
"""

from irtool.serialization.keras_objects import register_namespace
from irtool.train.losses import (  # noqa: F401 - the public namespace
    BinaryCrossentropy,
    CategoricalCrossentropy,
    CategoricalHinge,
    CosineSimilarity,
    Hinge,
    Huber,
    KLDivergence,
    LogCosh,
    Loss,
    LossFunctionWrapper,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Poisson,
    SparseCategoricalCrossentropy,
    SquaredHinge,
    binary_crossentropy,
    categorical_crossentropy,
    categorical_hinge,
    cosine_similarity,
    deserialize,
    get,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    resolve_loss,
    serialize,
    sparse_categorical_crossentropy,
    squared_hinge,
)

# Keras' legacy aliases of the functions.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
bce = BCE = binary_crossentropy

__all__ = [name for name in dir() if not name.startswith("_")]

register_namespace("keras.losses", globals())
