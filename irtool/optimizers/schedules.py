"""``keras.optimizers.schedules``: learning-rate schedules (defined in :mod:`irtool.train.schedules`)."""

from irtool.serialization.keras_objects import register_namespace
from irtool.train.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    serialize,
)

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "serialize",
]

register_namespace("keras.optimizers.schedules", globals())
