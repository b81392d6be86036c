"""GroupQueryAttention (Ainslie et al., 2023): Keras 3's ``keras.layers.GroupQueryAttention``.

``num_query_heads`` query heads share ``num_key_value_heads`` key/value heads: the key and value
projections are repeated ``num_query_heads // num_key_value_heads`` times along the head axis
(``ops.repeat``, so query head ``i`` reads key/value head ``i // repeats``), then attention runs as
in MultiHeadAttention over rank-4 projections. The scores, masks (input masks, ``attention_mask``,
``use_causal_mask``, ``sliding_window``), softmax paths and dropout are MultiHeadAttention's
methods, borrowed: for rank-4 projections Keras computes both layers the same way.
"""

from __future__ import annotations

import math

from irtool import constraints, initializers, ops, regularizers
from irtool.layers.einsum_dense import build_sublayer
from irtool.layers.layer import Layer
from irtool.layers.multi_head_attention import MultiHeadAttention, _keras_mask, _shapes


class GroupQueryAttention(Layer):
    """Grouped-query attention over ``(batch, seq, features)`` inputs; output shaped like the query.

    >>> import numpy as np
    >>> gqa = GroupQueryAttention(head_dim=4, num_query_heads=4, num_key_value_heads=2)
    >>> gqa(np.ones((1, 3, 8), "float32"), np.ones((1, 5, 8), "float32")).shape
    (1, 3, 8)
    """

    supports_masking = True
    # Keras' class is GroupedQueryAttention, exported (and serialized) as GroupQueryAttention: the
    # class name shows in auto names, summaries and the .weights.h5 paths.
    class_name = property(lambda self: "GroupedQueryAttention")

    # Shared with MultiHeadAttention, which reads the same private attributes set below.
    _build_from = MultiHeadAttention._build_from
    _dense = MultiHeadAttention._dense
    _build_attention = MultiHeadAttention._build_attention
    _cast_input = MultiHeadAttention._cast_input
    _project = MultiHeadAttention._project
    _compute_attention_mask = MultiHeadAttention._compute_attention_mask
    _compute_attention = MultiHeadAttention._compute_attention

    def __init__(
        self,
        head_dim,
        num_query_heads,
        num_key_value_heads,
        dropout=0.0,
        use_bias=True,
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
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if num_query_heads % num_key_value_heads != 0:
            raise ValueError("`num_query_heads` must be divisible by `num_key_value_heads`.")
        if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window <= 0):
            raise ValueError(
                f"`sliding_window` must be `None` or a positive integer. Received: sliding_window={sliding_window}"
            )
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_repeats = num_query_heads // num_key_value_heads
        self.dropout = self._dropout = dropout
        self.use_bias = self._use_bias = use_bias
        self.use_gate = self._use_gate = use_gate
        self.sliding_window = self._sliding_window = sliding_window
        self._flash_attention = bool(flash_attention)
        if self._flash_attention and dropout > 0.0:
            raise ValueError(
                "Dropout is not supported when flash attention is enabled. Please set dropout to 0.0 to use flash "
                "attention."
            )
        self._kernel_initializer = initializers.get(kernel_initializer)
        self._bias_initializer = initializers.get(bias_initializer)
        self._kernel_regularizer = regularizers.get(kernel_regularizer)
        self._bias_regularizer = regularizers.get(bias_regularizer)
        self._kernel_constraint = constraints.get(kernel_constraint)
        self._bias_constraint = constraints.get(bias_constraint)
        self.seed = seed
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(head_dim))
        self._attention_axes = None

    kernel_initializer = property(lambda self: self._kernel_initializer)
    bias_initializer = property(lambda self: self._bias_initializer)

    def build(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, key_shape = _shapes(query_shape, value_shape, key_shape)
        if not len(query_shape) == len(value_shape) == 3:
            raise ValueError(
                "GroupQueryAttention takes `query`, `value` and `key` of rank 3 (batch, sequence, features). "
                f"Received: query_shape={query_shape}, value_shape={value_shape}"
            )
        self.feature_dim = query_shape[-1]
        h, kv, d = self.num_query_heads, self.num_key_value_heads, self.head_dim
        # Keras' build order (and so weight order): query, key, gate, value, attention_output.
        projections = [("query", "bqm,muh->bquh", h, "uh", query_shape, None)]
        projections.append(("key", "bkm,mvh->bkvh", kv, "vh", key_shape, None))
        if self.use_gate:
            projections.append(("gate", "bqm,muh->bquh", h, "uh", query_shape, "sigmoid"))
        projections.append(("value", "bkm,mvh->bkvh", kv, "vh", value_shape, None))
        for name, equation, heads, bias_axes, shape, activation in projections:
            dense = self._dense(equation, (None, heads, d), bias_axes, name, activation)
            build_sublayer(self, dense, shape)
            setattr(self, f"_{name}_dense", dense)
        self._build_attention(4)
        self._output_dense = self._dense("bquh,uhm->bqm", (None, self.feature_dim), "m", "attention_output")
        build_sublayer(self, self._output_dense, (None, None, h, d))
        self.built = True

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
        # Keras fills each `<arg>_mask` left unset from that argument's mask.
        query_mask = _keras_mask(query) if query_mask is None else query_mask
        value_mask = _keras_mask(value) if value_mask is None else value_mask
        if key is not None and key_mask is None:
            key_mask = _keras_mask(key)
        key = value if key is None else key
        value, key = self._cast_input(value), self._cast_input(key)
        mask = self._compute_attention_mask(query_mask, value_mask, key_mask, attention_mask)

        gate, query, key, value = self._project(query, key, value)

        key = ops.repeat(key, self.num_repeats, axis=2)  # (batch, source, query heads, head_dim)
        value = ops.repeat(value, self.num_repeats, axis=2)
        output, scores = self._compute_attention(
            query, key, value, mask, training, return_attention_scores, use_causal_mask
        )
        if gate is not None:
            output = ops.multiply(output, gate)
        output = self._output_dense(output)
        return (output, scores) if return_attention_scores else output

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        query_shape, value_shape, key_shape = _shapes(query_shape, value_shape, key_shape)
        if query_shape[-1] != value_shape[-1]:
            raise ValueError(
                "The last dimension of `query_shape` and `value_shape` must be equal, but are "
                f"{query_shape[-1]}, {value_shape[-1]}. Received: query_shape={query_shape}, value_shape={value_shape}"
            )
        return query_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "head_dim": self.head_dim,
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "use_bias": self.use_bias,
                "use_gate": self.use_gate,
                "sliding_window": self.sliding_window,
                "dropout": self.dropout,
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
