"""The ``compile_config`` of a ``.keras`` file: the arguments of ``model.compile``, as Keras 3 stores them.

Keras keeps what the user passed to ``compile`` (a loss name stays a string, a ``Loss`` or an
optimizer becomes its ``{"module", "class_name", "config", "registered_name"}`` dict, a function
``{"module": "builtins", "class_name": "function", "config": "<name>"}``), in the structure passed
(one loss, a list by output, a dict by output name). Loading rebuilds the objects from irtool's
tables of optimizers, losses and metrics (and ``custom_objects``): nothing is imported or run from
the file.
"""

from __future__ import annotations

import inspect

from irtool.train import losses as losses_module
from irtool.train import metrics as metrics_module
from irtool.train import optimizers as optimizers_module
from irtool.train.losses import Loss
from irtool.train.metric import Metric
from irtool.train.optimizers.base import Optimizer

#: ``compile`` arguments Keras records, in its order.
COMPILE_ARGUMENTS = (
    "optimizer",
    "loss",
    "loss_weights",
    "metrics",
    "weighted_metrics",
    "run_eagerly",
    "steps_per_execution",
    "jit_compile",
)


def _serialize_value(value, kind: str):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize_value(v, kind) for v in value]
    if isinstance(value, dict):
        return {str(k): _serialize_value(v, kind) for k, v in value.items()}
    if isinstance(value, Optimizer):
        return optimizers_module.serialize(value)
    if isinstance(value, Metric) or (kind == "metric" and not isinstance(value, Loss)):
        return metrics_module.serialize(value)
    if isinstance(value, Loss) or inspect.isfunction(value):
        return losses_module.serialize(value)
    raise TypeError(f"Cannot serialize the compile argument {value!r} of type {type(value).__name__}")


def serialize_compile_args(args: dict) -> dict:
    """The JSON-ready ``compile_config`` of a model compiled with ``args`` (``compile``'s arguments)."""
    config = {}
    for name in COMPILE_ARGUMENTS:
        kind = "metric" if name in ("metrics", "weighted_metrics") else "loss"
        try:
            config[name] = _serialize_value(args.get(name), kind)
        except TypeError as error:
            raise TypeError(f"compile(): `{name}`: {error}") from None
    return config


def _deserialize_value(value, kind: str, custom_objects):
    if isinstance(value, list):
        return [_deserialize_value(v, kind, custom_objects) for v in value]
    if isinstance(value, dict) and "class_name" in value:
        if kind == "metric":
            return metrics_module.deserialize(value, custom_objects=custom_objects)
        return losses_module.deserialize(value, custom_objects=custom_objects)
    if isinstance(value, dict):
        return {k: _deserialize_value(v, kind, custom_objects) for k, v in value.items()}
    if isinstance(value, str) and custom_objects and value in custom_objects:
        return custom_objects[value]
    return value


def deserialize_compile_config(config: dict, custom_objects=None) -> dict:
    """``compile`` keyword arguments from a ``compile_config`` (unknown classes raise ``ValueError``)."""
    if not isinstance(config, dict):
        raise ValueError(f"`compile_config` should be a JSON object. Received: {config!r}")
    unknown = sorted(set(config) - set(COMPILE_ARGUMENTS) - {"auto_scale_loss"})
    if unknown:
        raise ValueError(f"`compile_config` has unknown keys {unknown}; expected some of {list(COMPILE_ARGUMENTS)}")
    kwargs = dict(config)
    optimizer = kwargs.get("optimizer")
    if isinstance(optimizer, dict):
        kwargs["optimizer"] = optimizers_module.deserialize(optimizer, custom_objects=custom_objects)
    for name in ("loss", "metrics", "weighted_metrics"):
        if name in kwargs:
            kind = "loss" if name == "loss" else "metric"
            kwargs[name] = _deserialize_value(kwargs[name], kind, custom_objects)
    return kwargs
