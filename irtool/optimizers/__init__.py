"""``keras.optimizers``: the optimizers of :mod:`irtool.train.optimizers` under Keras' public names.

import irtool as keras
opt = keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-3, 100, 0.9))
"""

from irtool.optimizers import schedules
from irtool.serialization.keras_objects import register_namespace
from irtool.train.optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Nadam,
    Optimizer,
    RMSprop,
    deserialize,
    get,
    serialize,
)

__all__ = [
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "SGD",
    "deserialize",
    "get",
    "schedules",
    "serialize",
]

register_namespace("keras.optimizers", globals())
