"""The metric base classes: ``Metric``, ``Sum``, ``Mean`` and ``MeanMetricWrapper`` (NumPy).

``Metric`` keeps its state in non-trainable ``Variable``s (``variables``), accumulated by
``update_state(y_true, y_pred, sample_weight=None)`` and read by ``result()``. ``Mean``/``Sum``
follow Keras' ``reduce_to_samplewise_values`` weighting rules; ``MeanMetricWrapper`` averages any
per-sample function (the loss functions included). Metrics run eagerly, outside the training graph.
"""

from __future__ import annotations

import inspect

import numpy as np

from irtool import backend, initializers
from irtool.ir.dtypes import standardize_dtype
from irtool.ir.naming import to_snake_case, uniquify
from irtool.ops.variable import Variable
from irtool.train.loss_functions import squeeze_or_expand_to_same_rank
from irtool.train.losses import Loss, deserialize_object, serialize
from irtool.train.metric_functions import FUNCTIONS, _array


def divide_no_nan(x, y):
    x, y = np.asarray(x), np.asarray(y)
    zero = y == 0
    return np.where(zero, np.zeros((), x.dtype), x / np.where(zero, np.ones((), y.dtype), y)).astype(x.dtype)


class Metric:
    """Base class: ``update_state``, ``result``, ``reset_state`` and ``variables``."""

    def __init__(self, dtype=None, name=None):
        self.name = name or uniquify(to_snake_case(self.__class__.__name__))
        self._dtype = standardize_dtype(getattr(dtype, "compute_dtype", dtype) or backend.floatx())
        self._variables: list = []
        self._metrics: list = []

    @property
    def dtype(self):
        return self._dtype

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="sum", name=None):
        shape = tuple(shape)
        dtype = standardize_dtype(dtype or self._dtype)
        value = initializers.get(initializer)(shape, dtype=dtype) if initializer is not None else np.zeros(shape, dtype)
        variable = Variable(value, dtype=dtype, trainable=False, name=name, path=f"{self.name}/{name}")
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    @property
    def variables(self) -> list:
        out = list(self._variables)
        for metric in self._metrics:
            out.extend(metric.variables)
        return out

    def reset_state(self):
        for v in self.variables:
            v.assign(np.zeros(v.shape, v.dtype))

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{self.__class__.__name__} name={self.name}>"

    __str__ = __repr__


def reduce_to_samplewise_values(values, sample_weight, reduce_fn, dtype, mask=None):
    """Keras' per-sample reduction: weights broadcast over trailing axes, extra axes reduced."""
    values = _array(values, dtype)
    if sample_weight is not None:
        sample_weight = _array(sample_weight, dtype)
        if mask is not None:
            mask, sample_weight = squeeze_or_expand_to_same_rank(_array(mask, dtype), sample_weight)
            sample_weight = sample_weight * mask
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim, values_ndim = sample_weight.ndim, values.ndim
        if values_ndim > weight_ndim:
            values = reduce_fn(values, axis=tuple(range(weight_ndim, values_ndim)))
        sample_weight = np.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, weight_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Sum(Metric):
    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, np.sum, self.dtype)
        self.total.assign(self.total.value + np.sum(values, dtype=self.dtype))

    def result(self):
        return self.total.numpy()[()]


class Mean(Metric):
    """Weighted mean: ``sum(values * w) / sum(w)`` over every update (``count`` = samples or weights)."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", name="total")
        self.count = self.add_variable((), "zeros", name="count")

    def update_state(self, values, sample_weight=None, _mask=None):
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, np.mean, self.dtype, _mask)
        self.total.assign(self.total.value + np.sum(values, dtype=self.dtype))
        if sample_weight is not None:
            num_samples = np.sum(sample_weight, dtype=self.dtype)
        elif values.ndim >= 1:
            num_samples = values.shape[0]
        else:
            num_samples = 1
        self.count.assign(self.count.value + np.asarray(num_samples, self.dtype))

    def result(self):
        return divide_no_nan(self.total.value, self.count.value)[()]


class MeanMetricWrapper(Mean):
    """The weighted mean of ``fn(y_true, y_pred, **kwargs)`` over every update."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        if isinstance(fn, Loss) or getattr(fn, "__module__", None) == "irtool.train.loss_functions":
            self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "fn": serialize(self._fn), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = deserialize_object(config["fn"], FUNCTIONS, kind="metric function")
        return cls(**config)


def _wrapper(class_name, fn, default_name, direction, params=(), config_keys=None, base=MeanMetricWrapper):
    """A built-in ``MeanMetricWrapper`` class with Keras' constructor ``(name, dtype, *params)``."""
    keys = [k for k, _ in params]
    config_keys = keys if config_keys is None else config_keys

    def __init__(self, *args, **kwargs):
        names = ["name", "dtype"] + keys
        if len(args) > len(names):
            raise TypeError(f"{class_name}() takes at most {len(names)} positional arguments")
        kwargs.update(zip(names, args))
        unknown = set(kwargs) - set(names)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected keyword arguments {sorted(unknown)}")
        fn_kwargs = {k: kwargs.get(k, d) for k, d in params}
        base.__init__(self, fn, name=kwargs.get("name") or default_name, dtype=kwargs.get("dtype"), **fn_kwargs)
        for k, v in fn_kwargs.items():
            setattr(self, k, v)
        self._direction = direction

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **{k: getattr(self, k) for k in config_keys}}

    P = inspect.Parameter
    __init__.__signature__ = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD), P("name", P.POSITIONAL_OR_KEYWORD, default=default_name)]
        + [P("dtype", P.POSITIONAL_OR_KEYWORD, default=None)]
        + [P(k, P.POSITIONAL_OR_KEYWORD, default=d) for k, d in params]
    )
    attrs = {"__init__": __init__, "get_config": get_config, "__module__": __name__}
    return type(class_name, (base,), attrs)
