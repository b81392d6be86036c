"""Keras 3 losses: ``Loss`` with its reductions, the built-in loss classes, ``get`` and serialization.

A loss works eagerly on NumPy arrays (returning NumPy) and on symbolic tensors (recording
primitives), because everything here is written in ``irtool.ops``: the trainer traces
``loss(y_true, y_pred, sample_weight)`` into its training graph and differentiates it.

Reductions follow Keras exactly: ``"sum_over_batch_size"`` (the default, also ``"mean"``) is
``sum(loss * sample_weight) / number_of_elements`` (NOT divided by the sum of the weights),
``"mean_with_sample_weight"`` divides by the sum of the weights, ``"sum"`` sums, ``"none"``/``None``
returns the per-sample losses.
"""

from __future__ import annotations

import inspect

from irtool import backend, ops
from irtool.ir.naming import to_snake_case, uniquify
from irtool.train import loss_functions as F
from irtool.train.loss_functions import (
    binary_crossentropy,
    cast,
    categorical_crossentropy,
    categorical_hinge,
    convert,
    cosine_similarity,
    divide_no_nan,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
    squeeze_or_expand_to_same_rank,
)

REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def standardize_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {set(REDUCTIONS)}. "
            f"Received: reduction={reduction}"
        )
    return reduction


def _static_size(x):
    """The number of elements of ``x`` when its shape is static, else ``None``."""
    if any(d is None for d in x.shape):
        return None
    n = 1
    for d in x.shape:
        n *= d
    return n


def apply_mask(sample_weight, mask, dtype, reduction):
    """Fold a boolean mask into the sample weights (Keras' ``apply_mask``)."""
    if mask is None:
        return sample_weight
    if reduction in ("mean", "sum_over_batch_size"):
        # Valid entries weigh total/valid, so the mean over all entries is the mean over valid ones.
        float_mask = cast(mask, dtype)
        valid = ops.sum(float_mask)
        total = _static_size(mask)
        total = ops.sum(float_mask * 0.0 + 1.0) if total is None else float(total)
        float_mask = ops.where(cast(mask, "bool"), divide_no_nan(total, valid), 0.0)
    else:
        float_mask = cast(mask, dtype)
    if sample_weight is None:
        return float_mask
    sample_weight = cast(sample_weight, dtype)
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    return sample_weight * float_mask


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    if reduction is None or reduction == "none" or tuple(values.shape) in ((), (0,)):
        return values
    if reduction == "sum":
        return ops.sum(values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return divide_no_nan(ops.sum(values), ops.sum(sample_weight))
    if _static_size(values) == 0:
        return ops.multiply(ops.sum(values), 0.0)
    return ops.mean(values)  # sum / number of elements


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size", dtype=None):
    reduction = standardize_reduction(reduction)
    values = convert(values, dtype)
    if sample_weight is not None:
        sample_weight = convert(sample_weight, dtype)
    sample_weight = apply_mask(sample_weight, mask, values.dtype, reduction)
    if sample_weight is not None:
        sample_weight = cast(sample_weight, values.dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    return reduce_values(values, sample_weight, reduction)


class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` returning per-sample losses."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or uniquify(to_snake_case(self.__class__.__name__))
        self.reduction = standardize_reduction(reduction)
        self._dtype = getattr(dtype, "compute_dtype", dtype) or backend.floatx()

    @property
    def dtype(self):
        return self._dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        in_mask = getattr(y_pred, "_keras_mask", None)
        y_pred = convert(y_pred, self.dtype)
        y_true = convert(y_true, self.dtype)
        losses, out_mask = self._call_with_mask(y_true, y_pred)
        if in_mask is not None and out_mask is not None:
            mask = ops.logical_and(in_mask, out_mask)
        else:
            mask = in_mask if in_mask is not None else out_mask
        return reduce_weighted_values(losses, sample_weight, mask, self.reduction, self.dtype)

    def _call_with_mask(self, y_true, y_pred):
        losses = self.call(y_true, y_pred)
        return losses, getattr(losses, "_keras_mask", None)

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LossFunctionWrapper(Loss):
    """A ``Loss`` around a function ``fn(y_true, y_pred, **kwargs)`` returning per-sample losses."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        config["fn"] = serialize(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = deserialize(config["fn"])
        return cls(**config)

    def __repr__(self):
        return f"<LossFunctionWrapper({self.fn}, kwargs={self._fn_kwargs})>"


def _builtin(class_name, fn, default_name, params=(), doc=""):
    """A built-in loss class: Keras' constructor (``params`` before ``reduction``) around ``fn``."""
    keys = [k for k, _ in params]

    def __init__(self, *args, **kwargs):
        names = keys + ["reduction", "name", "dtype"]
        if len(args) > len(names):
            raise TypeError(f"{class_name}() takes at most {len(names)} positional arguments")
        kwargs.update(zip(names, args))
        unknown = set(kwargs) - set(names)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected keyword arguments {sorted(unknown)}")
        fn_kwargs = {k: kwargs.get(k, default) for k, default in params}
        LossFunctionWrapper.__init__(
            self,
            fn,
            reduction=kwargs.get("reduction", "sum_over_batch_size"),
            name=kwargs.get("name") or default_name,
            dtype=kwargs.get("dtype"),
            **fn_kwargs,
        )
        for k, v in fn_kwargs.items():
            setattr(self, k, v)

    def get_config(self):
        config = Loss.get_config(self)
        config.update(self._fn_kwargs)
        return config

    P = inspect.Parameter
    __init__.__signature__ = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD)]
        + [P(k, P.POSITIONAL_OR_KEYWORD, default=d) for k, d in params]
        + [P("reduction", P.POSITIONAL_OR_KEYWORD, default="sum_over_batch_size")]
        + [P("name", P.POSITIONAL_OR_KEYWORD, default=default_name), P("dtype", P.POSITIONAL_OR_KEYWORD, default=None)]
    )
    signature = ", ".join([f"{k}={d!r}" for k, d in params] + ["reduction='sum_over_batch_size'"])
    cls = type(
        class_name,
        (LossFunctionWrapper,),
        {
            "__init__": __init__,
            "get_config": get_config,
            "__doc__": f"``{class_name}({signature}, name={default_name!r}, dtype=None)``. {doc}",
            "__module__": __name__,
        },
    )
    return cls


_LOGITS = [("from_logits", False), ("label_smoothing", 0.0), ("axis", -1)]

MeanSquaredError = _builtin("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _builtin("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _builtin(
    "MeanAbsolutePercentageError", mean_absolute_percentage_error, "mean_absolute_percentage_error"
)
MeanSquaredLogarithmicError = _builtin(
    "MeanSquaredLogarithmicError", mean_squared_logarithmic_error, "mean_squared_logarithmic_error"
)
CosineSimilarity = _builtin("CosineSimilarity", cosine_similarity, "cosine_similarity", [("axis", -1)])
Huber = _builtin("Huber", huber, "huber_loss", [("delta", 1.0)])
LogCosh = _builtin("LogCosh", log_cosh, "log_cosh")
Hinge = _builtin("Hinge", hinge, "hinge", doc="0/1 labels are converted to -1/1.")
SquaredHinge = _builtin("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _builtin("CategoricalHinge", categorical_hinge, "categorical_hinge")
KLDivergence = _builtin("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _builtin("Poisson", poisson, "poisson")
BinaryCrossentropy = _builtin("BinaryCrossentropy", binary_crossentropy, "binary_crossentropy", _LOGITS)
CategoricalCrossentropy = _builtin(
    "CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy", _LOGITS
)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """``SparseCategoricalCrossentropy(from_logits=False, ignore_class=None, reduction=..., axis=-1)``.

    With ``ignore_class``, samples of that label count as masked: the default reduction then
    averages over the other samples only, as in Keras.
    """

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(
            sparse_categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis

    def _call_with_mask(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return F.sparse_categorical_crossentropy_with_mask(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "ignore_class": self.ignore_class})
        return config


# ---------------------------------------------------------------------------------------
# Lookup and serialization

LOSS_CLASSES = [
    Loss,
    LossFunctionWrapper,
    KLDivergence,
    Poisson,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    MeanSquaredError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    CosineSimilarity,
    LogCosh,
    Huber,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
]
LOSS_FUNCTIONS = [
    kl_divergence,
    poisson,
    binary_crossentropy,
    categorical_crossentropy,
    sparse_categorical_crossentropy,
    mean_squared_error,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    cosine_similarity,
    log_cosh,
    huber,
    hinge,
    squared_hinge,
    categorical_hinge,
]
ALL_OBJECTS = LOSS_CLASSES + LOSS_FUNCTIONS
ALL_OBJECTS_DICT = {obj.__name__: obj for obj in ALL_OBJECTS}
ALL_OBJECTS_DICT.update(
    {
        "bce": binary_crossentropy,
        "BCE": binary_crossentropy,
        "kld": kl_divergence,
        "KLD": kl_divergence,
        "mae": mean_absolute_error,
        "MAE": mean_absolute_error,
        "mse": mean_squared_error,
        "MSE": mean_squared_error,
        "mape": mean_absolute_percentage_error,
        "MAPE": mean_absolute_percentage_error,
        "msle": mean_squared_logarithmic_error,
        "MSLE": mean_squared_logarithmic_error,
    }
)


def serialize_object(obj, module: str, known: dict) -> dict | None:
    """Keras' ``serialize_keras_object`` dict for a class instance or a function."""
    if obj is None:
        return None
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return {"module": "builtins", "class_name": "function", "config": obj.__name__, "registered_name": "function"}
    cls = type(obj)
    public = known.get(cls.__name__) is cls and cls.__name__ not in ("LossFunctionWrapper",)
    return {
        "module": module if public else cls.__module__,
        "class_name": cls.__name__,
        "config": obj.get_config(),
        "registered_name": None if public else cls.__name__,
    }


def deserialize_object(config, known: dict, custom_objects=None, kind="loss"):
    """Rebuild an object from a name or a ``serialize`` dict (``custom_objects`` first)."""
    lookup = {**known, **(custom_objects or {})}
    if isinstance(config, str):
        obj = lookup.get(config)
        if obj is None:
            raise ValueError(f"Could not interpret {kind} identifier: {config}")
        return obj() if inspect.isclass(obj) else obj
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret serialized {kind}: {config!r}")
    name = config["class_name"]
    if name == "function":
        return deserialize_object(config["config"], known, custom_objects, kind)
    cls = lookup.get(name) or lookup.get(config.get("registered_name") or "")
    if cls is None:
        raise ValueError(f"Could not locate class '{name}'. Make sure custom classes are passed in `custom_objects`.")
    return cls.from_config(config.get("config") or {})


def serialize(loss):
    """Keras' config dict of a ``Loss`` (``{"module", "class_name", "config", ...}``) or function."""
    return serialize_object(loss, "keras.losses", ALL_OBJECTS_DICT)


def deserialize(name, custom_objects=None):
    return deserialize_object(name, ALL_OBJECTS_DICT, custom_objects, "loss")


def get(identifier):
    """A loss function or ``Loss`` instance from a name, config dict, class, instance or callable."""
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
    raise ValueError(f"Could not interpret loss identifier: {identifier}")


def object_name(obj) -> str:
    """Keras' ``get_object_name``: ``.name``, else a function's snake-cased ``__name__``."""
    if hasattr(obj, "name"):
        return obj.name
    if hasattr(obj, "__name__"):
        return to_snake_case(obj.__name__)
    return to_snake_case(obj.__class__.__name__)


def _shape(x) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else tuple(x)


def is_binary_or_sparse_categorical(y_true_shape, y_pred_shape):
    """Keras' shape rule for "accuracy"/"crossentropy": ``(is_binary, is_sparse_categorical)``."""
    t, p = _shape(y_true_shape), _shape(y_pred_shape)
    t_last = t[-1] if t else None
    p_last = p[-1] if p else None
    is_binary = p_last == 1
    is_sparse = len(t) < len(p) or (t_last == 1 and p_last is not None and p_last > 1)
    return is_binary, is_sparse


def resolve_loss(identifier, y_true_shape, y_pred_shape):
    """What ``compile(loss=...)`` makes of one output's loss: a ``Loss`` (``None`` stays ``None``).

    ``"crossentropy"``/``"ce"`` pick binary, sparse categorical or categorical crossentropy by the
    shapes (arrays or tensors also accepted); functions are wrapped in ``LossFunctionWrapper`` named
    by the user's string (or the function's name).
    """
    if identifier is None:
        return None
    if str(identifier).lower() in ("crossentropy", "ce"):
        is_binary, is_sparse = is_binary_or_sparse_categorical(y_true_shape, y_pred_shape)
        if is_binary:
            loss = binary_crossentropy
        elif is_sparse:
            loss = sparse_categorical_crossentropy
        else:
            loss = categorical_crossentropy
    else:
        loss = get(identifier)
    if not isinstance(loss, Loss):
        name = identifier if isinstance(identifier, str) else object_name(loss)
        loss = LossFunctionWrapper(loss, name=name)
    return loss
