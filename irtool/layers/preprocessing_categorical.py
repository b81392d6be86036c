"""Categorical preprocessing layers written in plain comparisons: CategoryEncoding, Discretization.

Both lower to ONNX exactly: a one-hot is ``Equal`` against ``arange(depth)``, a bucket index is a
sum of ``x >= boundary`` comparisons, so no new primitive and no rounding is involved.
"""

from __future__ import annotations

import numpy as np

from irtool import ops
from irtool.layers.layer import Layer

_OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


def encode_categorical(inputs, output_mode, depth, dtype, count_weights=None):
    """Keras' ``numerical_utils.encode_categorical_inputs`` on its torch backend, in irtool ops.

    Indices are truncated to integers first (torch's ``one_hot`` takes ``long``), negative or
    out-of-range ones encode to all zeros. ``multi_hot`` and ``count`` reduce axis 1 of inputs of
    rank 2 or more (axis 0 of rank-1 inputs), exactly as Keras does, whatever the rank.
    """
    if output_mode == "int":
        return ops.cast(inputs, dtype)
    if len(inputs.shape) == 0:
        inputs = ops.expand_dims(inputs, -1)
    indices = ops.cast(inputs, "int64")
    if output_mode == "one_hot":
        if len(indices.shape) > 1 and indices.shape[-1] == 1:
            indices = ops.squeeze(indices, -1)
        return ops.one_hot(indices, depth, dtype=dtype)
    reduction_axis = 1 if len(indices.shape) > 1 else 0
    if output_mode == "multi_hot":
        return ops.max(ops.one_hot(indices, depth, dtype=dtype), axis=reduction_axis)
    if count_weights is not None:
        encoded = ops.one_hot(indices, depth, dtype=count_weights.dtype)
        encoded = ops.multiply(encoded, ops.expand_dims(count_weights, -1))
    else:
        encoded = ops.one_hot(indices, depth, dtype=dtype)
    return ops.sum(encoded, axis=reduction_axis)


def _encoded_shape(input_shape, output_mode, depth):
    """Keras' static output shape of ``encode_categorical`` (CategoryEncoding's rules)."""
    input_shape = tuple(input_shape)
    if len(input_shape) == 0:
        return (depth,)
    if output_mode == "one_hot" and (input_shape[-1] != 1 or len(input_shape) == 1):
        return input_shape + (depth,)
    return input_shape[:-1] + (depth,)


class CategoryEncoding(Layer):
    """Integer indices in ``[0, num_tokens)`` to one-hot, multi-hot or count vectors (Keras 3)."""

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":  # Keras' old name for multi_hot
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"Unknown arg for output_mode: {output_mode}")
        if num_tokens is None:
            raise ValueError(
                "num_tokens must be set to use this layer. If the number of tokens is not known beforehand, "
                "use the IntegerLookup layer instead."
            )
        if num_tokens < 1:
            raise ValueError(f"`num_tokens` must be >= 1. Received: num_tokens={num_tokens}.")
        if sparse:
            # Keras' torch backend refuses it too; irtool has no sparse tensors.
            raise ValueError("Unsupported value `sparse=True` with torch backend")
        self.num_tokens = num_tokens
        self.output_mode = output_mode
        self.sparse = sparse
        self.built = True

    def call(self, inputs, count_weights=None):
        if count_weights is not None:
            if self.output_mode != "count":
                raise ValueError(
                    "`count_weights` is not used when `output_mode` is not `'count'`. "
                    f"Received `count_weights={count_weights}`."
                )
            count_weights = ops.cast(count_weights, self.dtype)
        return encode_categorical(inputs, self.output_mode, self.num_tokens, self.dtype, count_weights)

    def compute_output_shape(self, input_shape):
        return _encoded_shape(input_shape, self.output_mode, self.num_tokens)

    def get_config(self):
        config = super().get_config()
        config.update({"num_tokens": self.num_tokens, "output_mode": self.output_mode})
        return config


class Discretization(Layer):
    """Bucket indices of ``inputs`` for ``bin_boundaries`` (``x < b[0]`` is bucket 0), or encoded.

    ``adapt(data)`` with ``num_bins`` computes the boundaries with Keras' own approximate quantile
    summaries (the same NumPy steps, so the same float32 boundaries).
    """

    def __init__(
        self,
        bin_boundaries=None,
        num_bins=None,
        epsilon=0.01,
        output_mode="int",
        sparse=False,
        dtype=None,
        name=None,
    ):
        super().__init__(name=name, dtype=dtype)
        if sparse:
            raise ValueError("`sparse=True` cannot be used with backend torch")
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(
                f"Unknown value for `output_mode`. Allowed values are: {_OUTPUT_MODES}. "
                f"Received: output_mode={output_mode}"
            )
        if num_bins is not None and num_bins < 0:
            raise ValueError(f"`num_bins` must be greater than or equal to 0. Received: `num_bins={num_bins}`")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(
                "Both `num_bins` and `bin_boundaries` should not be set. "
                f"Received: `num_bins={num_bins}` and `bin_boundaries={bin_boundaries}`"
            )
        if num_bins is None and bin_boundaries is None:
            raise ValueError("You need to set either `num_bins` or `bin_boundaries`.")
        self.bin_boundaries = bin_boundaries
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = sparse
        self.summary = None if bin_boundaries else np.array([[], []], dtype="float32")
        self.built = True

    @property
    def output_dtype(self):
        return self.dtype if self.output_mode != "int" else "int32"

    # -- adapt: Keras' quantile summaries, step for step ------------------------------------
    def adapt(self, data, steps=None):
        if self.num_bins is None:
            raise ValueError(
                "Cannot adapt a Discretization layer that has been initialized with `bin_boundaries`, "
                "use `num_bins` instead."
            )
        self.reset_state()
        if hasattr(data, "__iter__") and not hasattr(data, "shape"):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        else:
            self.update_state(data)
        self.finalize_state()

    def update_state(self, data):
        data = np.array(data).astype("float32")
        self.summary = _merge_summaries(_summarize(data, self.epsilon), self.summary, self.epsilon)

    def finalize_state(self):
        if self.num_bins is not None:
            self.bin_boundaries = _compress_summary(self.summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def reset_state(self):
        if self.num_bins is not None:
            self.summary = np.array([[], []], dtype="float32")

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError(
                "You need to either pass the `bin_boundaries` argument at construction time or call "
                "`adapt(dataset)` before you can start using the `Discretization` layer."
            )
        x = inputs
        if x.dtype == "bool":
            x = ops.cast(x, "uint8")
        # torch.bucketize(x, float32 bins, right=True) promotes both to one type; for floats and
        # the usual integers that is float32. Bucket = number of boundaries b with not (x < b):
        # "not less" rather than ">=" so a NaN lands in the last bucket, as bucketize puts it.
        x = ops.cast(x, "float32") if x.dtype != "float64" else x
        bins = np.asarray(self.bin_boundaries, dtype=x.dtype)
        if bins.size:
            below = ops.less(ops.expand_dims(x, -1), bins)
            indices = ops.sum(ops.cast(ops.logical_not(below), "int32"), axis=-1)
        else:
            indices = ops.cast(ops.zeros_like(x), "int32")
        return encode_categorical(indices, self.output_mode, len(self.bin_boundaries) + 1, self.output_dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        return _encoded_shape(input_shape, self.output_mode, depth)

    def get_config(self):
        return {
            "bin_boundaries": self.bin_boundaries,
            "num_bins": self.num_bins,
            "epsilon": self.epsilon,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "name": self.name,
            "dtype": self.dtype,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = config["dtype"].get("config", {}).get("name")
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            # An adapted layer has both; __init__ refuses both, so set the boundaries after.
            bin_boundaries = config.pop("bin_boundaries")
            layer = cls(**config)
            layer.bin_boundaries = bin_boundaries
            return layer
        return cls(**config)


def _summarize(values, epsilon):
    """Keras' ``discretization.summarize``: every ``step``-th sorted value, weighted by ``step``."""
    values = np.sort(np.reshape(values, [-1]))
    step = max(np.size(values) / (1.0 / epsilon), 1)
    boundaries = values[int(step - 1) :: int(step)]
    return np.stack([boundaries, np.ones_like(boundaries) * step])


def _merge_summaries(prev_summary, next_summary, epsilon):
    merged = np.concatenate((prev_summary, next_summary), axis=1)
    merged = np.take(merged, np.argsort(merged[0]), axis=1)
    return _compress_summary(merged, epsilon)


def _compress_summary(summary, epsilon):
    """Keras' ``compress_summary``: interpolate values at evenly spaced cumulative weights."""
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum_weights = summary[1].cumsum()
    cum_weight_percents = cum_weights / cum_weights[-1]
    new_bins = np.interp(percents, cum_weight_percents, summary[0])
    cum_weights = np.interp(percents, cum_weight_percents, cum_weights)
    new_weights = cum_weights - np.concatenate((np.array([0]), cum_weights[:-1]))
    return np.stack((new_bins, new_weights)).astype("float32")
