"""Optimizers with Keras 3's names, arguments, defaults, state layout and update rules.

``get("adam")``, ``get({"class_name": "SGD", "config": {...}})`` or an instance; see
:mod:`irtool.train.optimizers.base` for the order of a step and :mod:`irtool.train.schedules` for
learning-rate schedules.
"""

from __future__ import annotations

from irtool.train import schedules
from irtool.train.optimizers.adam import Adam, Adamax, AdamW, Nadam
from irtool.train.optimizers.base import ArrayOptimizer, Optimizer
from irtool.train.optimizers.sgd import SGD, Adadelta, Adagrad, RMSprop
from irtool.train.optimizers.utils import StateVariable

ALL_OBJECTS = (Optimizer, Adam, SGD, RMSprop, Adadelta, AdamW, Adagrad, Adamax, Nadam)
ALL_OBJECTS_DICT = {cls.__name__.lower(): cls for cls in ALL_OBJECTS}


def serialize(optimizer) -> dict:
    """Keras' serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    return {
        "module": "keras.optimizers",
        "class_name": type(optimizer).__name__,
        "config": optimizer.get_config(),
        "registered_name": None,
    }


def deserialize(config, custom_objects=None):
    """An optimizer from :func:`serialize`'s dict; built-in class names are case-insensitive."""
    name = config.get("class_name")
    custom_objects = custom_objects or {}
    cls = custom_objects.get(name) or ALL_OBJECTS_DICT.get(str(name).lower())
    if cls is None or cls is Optimizer:
        raise ValueError(f"Could not interpret optimizer identifier: {config}")
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects)


def get(identifier):
    """``None``, an optimizer instance (returned as is), a name (``"adam"``, ``"SGD"``) or a config dict."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = deserialize({"class_name": identifier, "config": {}})
    else:
        obj = identifier
    if isinstance(obj, Optimizer):
        return obj
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")


__all__ = [
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "ArrayOptimizer",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "SGD",
    "StateVariable",
    "deserialize",
    "get",
    "schedules",
    "serialize",
]
