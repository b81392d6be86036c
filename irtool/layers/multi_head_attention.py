"""MultiHeadAttention (Vaswani et al., 2017) with Keras 3's arguments, weights, masks and numerics.

- Projections are ``EinsumDense`` sublayers named ``query``, ``key``, ``value`` (``gate``) and
  ``attention_output`` (weights ``multi_head_attention/query/kernel``...). The products are
  Transpose/MatMul (no per-head loop); reshapes keep batch and sequence dims dynamic.
- Masks: ``attention_mask`` (B, T, S), ``use_causal_mask``, ``sliding_window`` and the
  ``_keras_mask`` of query/value/key, combined as Keras' ``_compute_attention_mask`` does.
- Masked positions follow the Keras path they correspond to: with ``return_attention_scores``
  (or dropout, or more than one attention axis) Keras' masked ``Softmax`` (logits set to -1e9,
  masked probabilities zeroed); otherwise ``ops.dot_product_attention`` (an additive
  ``-0.7 * 3.38953e38`` bias, so a fully masked row attends uniformly).
"""

from __future__ import annotations

import inspect
import math
import string

import numpy as np

from irtool import constraints, initializers, ops, regularizers
from irtool.ir import naming
from irtool.layers.dropout import Dropout
from irtool.layers.einsum_dense import EinsumDense, build_sublayer, einsum_matmul
from irtool.layers.layer import Layer
from irtool.ops.core import SymbolicTensor


def _large_negative(dtype: str, dot_product: bool) -> float:
    if dot_product:  # Keras' torch/jax dot_product_attention bias
        return (65500.0 if dtype == "float16" else 3.38953e38) * -0.7
    return -3e4 if dtype == "float16" else -1e9  # keras.layers.Softmax


def band_mask(scores, lower=None, upper=None):
    """A bool ``(1, ..., 1, T, S)`` mask of ``scores``' last two axes keeping ``-lower <= j - i <= upper``."""
    lead = (slice(0, 1),) * (len(scores.shape) - 2)
    ones = ops.ones_like(scores[lead])
    if upper is not None:
        ones = ops.tril(ones, upper)
    if lower is not None:
        ones = ops.triu(ones, -lower)
    return ops.greater(ones, 0.0)


def _softmax(x, axes):
    if len(axes) == 1:
        return ops.softmax(x, axis=axes[0])
    e = ops.exp(ops.subtract(x, ops.max(x, axis=axes, keepdims=True)))
    return ops.divide(e, ops.sum(e, axis=axes, keepdims=True))


def _keras_mask(x):
    return getattr(x, "_keras_mask", None)


def _shapes(query_shape, value_shape, key_shape):
    """The three shapes as tuples (``key`` defaults to ``value``), checking that ``key`` and
    ``value`` agree on every dimension but the last."""
    query_shape, value_shape = tuple(query_shape), tuple(value_shape)
    key_shape = value_shape if key_shape is None else tuple(key_shape)
    if value_shape[1:-1] != key_shape[1:-1]:
        raise ValueError(
            "All dimensions of `value` and `key`, except the last one, must be equal. Received: "
            f"value_shape={value_shape} and key_shape={key_shape}"
        )
    return query_shape, value_shape, key_shape


class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al., 2017) with Keras 3's arguments and weight layout.

    >>> import numpy as np
    >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> mha(np.ones((1, 3, 8), "float32"), np.ones((1, 5, 8), "float32")).shape
    (1, 3, 8)
    """

    supports_masking = True

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        for arg, value, optional in (("num_heads", num_heads, False), ("key_dim", key_dim, False)) + (
            ("value_dim", value_dim, True),
        ):
            if optional and value is None:
                continue
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"Received an invalid value for argument `{arg}`, expected a positive integer"
                    f"{' or `None`' if optional else ''}. Received: {arg}={value}"
                )
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._num_heads = num_heads
        self._key_dim = key_dim
        self._value_dim = value_dim if value_dim else key_dim
        self._dropout = dropout
        self._use_bias = use_bias
        self._use_gate = use_gate
        if output_shape:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(output_shape)
            except TypeError:
                raise ValueError(
                    f"Invalid `output_shape`: {output_shape}. When specified, the `output_shape` should be of type "
                    "tuple, list, or int."
                ) from None
        self._output_shape = output_shape or None
        self._flash_attention = bool(flash_attention)
        self._kernel_initializer = initializers.get(kernel_initializer)
        self._bias_initializer = initializers.get(bias_initializer)
        self._kernel_regularizer = regularizers.get(kernel_regularizer)
        self._bias_regularizer = regularizers.get(bias_regularizer)
        self._kernel_constraint = constraints.get(kernel_constraint)
        self._bias_constraint = constraints.get(bias_constraint)
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(
                f"`attention_axes` must be an int, list, or tuple.Received: attention_axes={attention_axes}"
            )
        self._attention_axes = attention_axes
        if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window <= 0):
            raise ValueError(
                f"`sliding_window` must be `None` or a positive integer. Received: sliding_window={sliding_window}"
            )
        self._sliding_window = sliding_window
        self.seed = seed
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))
        if self._flash_attention and self._dropout > 0.0:
            raise ValueError(
                "Dropout is not supported when flash attention is enabled. Please set dropout to 0.0 to use flash "
                "attention."
            )

    num_heads = property(lambda self: self._num_heads)
    key_dim = property(lambda self: self._key_dim)
    value_dim = property(lambda self: self._value_dim)
    dropout = property(lambda self: self._dropout)
    use_bias = property(lambda self: self._use_bias)
    attention_axes = property(lambda self: self._attention_axes)
    query_dense = property(lambda self: self._query_dense)
    key_dense = property(lambda self: self._key_dense)
    value_dense = property(lambda self: self._value_dense)
    output_dense = property(lambda self: self._output_dense)

    # -- building --------------------------------------------------------------------------
    def _build_from(self, args, kwargs) -> None:
        # Keras builds with the shapes of all tensor arguments (build(query_shape, value_shape, key_shape)).
        bound = inspect.signature(self.call).bind(*args, **kwargs).arguments
        key = bound.get("key")
        self.build(tuple(bound["query"].shape), tuple(bound["value"].shape), None if key is None else tuple(key.shape))

    def _dense(self, equation, output_shape, bias_axes, name, activation=None):
        def clone(init):
            return type(init).from_config(init.get_config()) if isinstance(init, initializers.Initializer) else init

        return EinsumDense(
            equation,
            output_shape=output_shape,
            activation=activation,
            bias_axes=bias_axes if self._use_bias else None,
            kernel_initializer=clone(self._kernel_initializer),
            bias_initializer=clone(self._bias_initializer),
            kernel_regularizer=self._kernel_regularizer,
            bias_regularizer=self._bias_regularizer,
            kernel_constraint=self._kernel_constraint,
            bias_constraint=self._bias_constraint,
            dtype=self.dtype,
            name=name,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, key_shape = _shapes(query_shape, value_shape, key_shape)
        if len(query_shape) != len(value_shape) or len(query_shape) < 3:
            raise ValueError(
                "`query`, `value` and `key` must have the same rank, at least 3 (batch, <attention dims>, features). "
                f"Received: query_shape={query_shape}, value_shape={value_shape}"
            )
        h, dk, dv = self._num_heads, self._key_dim, self._value_dim
        projections = [("query", query_shape, dk, None), ("key", key_shape, dk, None)]
        if self._use_gate:
            projections.append(("gate", query_shape, dv, "sigmoid"))
        projections.append(("value", value_shape, dv, None))
        for name, shape, dim, activation in projections:
            equation, bias_axes, output_rank = _build_proj_equation(len(shape) - 1, bound_dims=1, output_dims=2)
            dense = self._dense(equation, _get_output_shape(output_rank - 1, [h, dim]), bias_axes, name, activation)
            build_sublayer(self, dense, shape)
            setattr(self, f"_{name}_dense", dense)
        self._build_attention(output_rank)
        output_shape = self._output_shape or [query_shape[-1]]
        equation, bias_axes, output_rank = _build_proj_equation(
            len(query_shape) - 1, bound_dims=2, output_dims=len(output_shape)
        )
        self._output_dense = self._dense(
            equation, _get_output_shape(output_rank - 1, output_shape), bias_axes, "attention_output"
        )
        output_input_shape = list(self._query_dense.compute_output_shape(query_shape))
        output_input_shape[-1] = dv
        build_sublayer(self, self._output_dense, tuple(output_input_shape))
        self.built = True

    def _build_attention(self, rank):
        if self._attention_axes is None:
            self._attention_axes = tuple(range(1, rank - 2))
        else:
            self._attention_axes = tuple(axis if axis >= 0 else (rank - 1) + axis for axis in self._attention_axes)
        self._dot_product_equation, self._combine_equation, scores_rank = _build_attention_equation(
            rank, self._attention_axes
        )
        self._norm_axes = tuple(range(scores_rank - len(self._attention_axes), scores_rank))
        naming.uniquify("softmax")  # Keras creates a Softmax sublayer here (auto-named)
        self._dropout_layer = Dropout(rate=self._dropout, seed=self.seed, dtype=self.dtype)

    # -- calling ---------------------------------------------------------------------------
    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        if self._flash_attention and return_attention_scores:
            raise ValueError(
                "Returning attention scores is not supported when flash attention is enabled. Please disable flash "
                "attention to access attention scores."
            )
        # Keras fills the `<arg>_mask` arguments from the inputs' masks, and always takes the query's
        # from the query tensor (an explicit `query_mask` is ignored, as in Keras 3).
        query_mask = _keras_mask(query)
        value_mask = _keras_mask(value) if value_mask is None else value_mask
        if key is not None and key_mask is None:
            key_mask = _keras_mask(key)
        key = value if key is None else key
        value, key = self._cast_input(value), self._cast_input(key)
        mask = self._compute_attention_mask(query_mask, value_mask, key_mask, attention_mask)

        gate, query, key, value = self._project(query, key, value)

        output, scores = self._compute_attention(
            query, key, value, mask, training, return_attention_scores, use_causal_mask
        )
        if gate is not None:
            output = ops.multiply(output, gate)
        output = self._output_dense(output)
        return (output, scores) if return_attention_scores else output

    def _cast_input(self, x):
        # Layer.__call__ autocasts the first argument only; Keras casts every float tensor argument.
        dtype = getattr(x, "dtype", None)
        if dtype is not None and str(dtype).startswith("float") and str(dtype) != self.dtype:
            return ops.cast(x, self.dtype)
        return x

    def _project(self, query, key, value):
        """``(gate or None, query, key, value)`` through the dense sublayers, which see the inputs
        without their masks (as in Keras, which removes them)."""
        tensors = [t for t in {id(t): t for t in (query, value, key)}.values() if isinstance(t, SymbolicTensor)]
        saved = [t._keras_mask for t in tensors]
        for t in tensors:
            t._keras_mask = None
        try:
            gate = self._gate_dense(query) if self._use_gate else None
            return gate, self._query_dense(query), self._key_dense(key), self._value_dense(value)
        finally:
            for t, m in zip(tensors, saved):
                t._keras_mask = m

    def _compute_attention_mask(self, query_mask, value_mask, key_mask, attention_mask):
        """Keras' ``_compute_attention_mask`` for the input masks; the causal and sliding-window
        masks are built on the scores (``_compute_attention``), which AND-combines the same way."""
        auto = None
        if query_mask is not None:
            auto = ops.expand_dims(ops.cast(query_mask, "bool"), -1)  # [B, T, 1]
        for m in (value_mask, key_mask):
            if m is not None:
                m = ops.expand_dims(ops.cast(m, "bool"), -2)  # [B, 1, S]
                auto = m if auto is None else ops.logical_and(auto, m)
        if attention_mask is not None:
            attention_mask = ops.cast(attention_mask, "bool")
            return attention_mask if auto is None else ops.logical_and(attention_mask, auto)
        return auto

    def _compute_attention(self, query, key, value, mask, training, return_attention_scores, use_causal_mask):
        dtype = query.dtype
        # Keras' dot_product_attention path (no scores returned, no dropout, rank-4 projections).
        dot_product = not (self._dropout > 0.0 or return_attention_scores or len(query.shape) != 4)
        query = ops.multiply(query, np.asarray(self._inverse_sqrt_key_dim, dtype))
        scores = einsum_matmul(self._dot_product_equation, key, query)
        if mask is not None:
            if len(mask.shape) > len(scores.shape):
                raise ValueError(
                    f"The attention mask must be broadcastable to the attention scores {tuple(scores.shape)}. "
                    f"Received: mask.shape={tuple(mask.shape)}"
                )
            for _ in range(len(scores.shape) - len(mask.shape)):
                mask = ops.expand_dims(mask, -len(self._attention_axes) * 2 - 1)
        band = None
        if use_causal_mask or self._sliding_window is not None:
            if len(self._attention_axes) != 1:
                raise ValueError(
                    "`use_causal_mask` and `sliding_window` need attention over a single axis. Received: "
                    f"attention_axes={self._attention_axes}"
                )
            w = None if self._sliding_window is None else self._sliding_window - 1
            band = band_mask(scores, lower=w, upper=0 if use_causal_mask else w)
        mask = band if mask is None else mask if band is None else ops.logical_and(mask, band)
        if mask is not None:
            _check_broadcastable(mask, scores)
            negative = np.asarray(_large_negative(dtype, dot_product), dtype)
            if dot_product:
                scores = ops.add(scores, ops.where(mask, np.zeros((), dtype), negative))
            else:
                scores = ops.where(mask, scores, negative)
        scores = _softmax(scores, self._norm_axes)
        if mask is not None and not dot_product:
            scores = ops.where(mask, scores, np.zeros((), dtype))
        weights = self._dropout_layer(scores, training=training) if self._dropout > 0.0 else scores
        output = einsum_matmul(self._combine_equation, weights, value)
        return output, scores

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, key_shape = _shapes(query_shape, value_shape, key_shape)
        return query_shape[:-1] + self._output_shape if self._output_shape else query_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self._num_heads,
                "key_dim": self._key_dim,
                "value_dim": self._value_dim,
                "dropout": self._dropout,
                "use_bias": self._use_bias,
                "use_gate": self._use_gate,
                "output_shape": self._output_shape,
                "attention_axes": self._attention_axes,
                "sliding_window": self._sliding_window,
                "kernel_initializer": initializers.serialize(self._kernel_initializer),
                "bias_initializer": initializers.serialize(self._bias_initializer),
                "kernel_regularizer": regularizers.serialize(self._kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self._bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self._kernel_constraint),
                "bias_constraint": constraints.serialize(self._bias_constraint),
                "seed": self.seed,
            }
        )
        return config


def _check_broadcastable(mask, scores):
    for m, s in zip(reversed(mask.shape), reversed(scores.shape)):
        if m is not None and s is not None and m not in (1, s):
            raise ValueError(
                "The attention mask must be broadcastable to the attention scores: each mask dimension must be 1 or "
                f"match. Received: scores.shape={tuple(scores.shape)}, mask.shape={tuple(mask.shape)}"
            )


def _build_attention_equation(rank, attn_axes):
    """Keras' einsum equations for ``scores = key . query`` and ``output = scores . value``."""
    target = string.ascii_lowercase[:rank]
    batch_dims = tuple(np.delete(range(rank), attn_axes + (rank - 1,)))
    offset = rank
    source = ""
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += string.ascii_lowercase[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes] + [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


def _build_proj_equation(free_dims, bound_dims, output_dims):
    letters = string.ascii_lowercase
    free = letters[:free_dims]
    bound = letters[free_dims : free_dims + bound_dims]
    out = letters[free_dims + bound_dims : free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{out}->{free}{out}", out, free_dims + output_dims


def _get_output_shape(output_rank, known_last_dims):
    return [None] * (output_rank - len(known_last_dims)) + list(known_last_dims)
