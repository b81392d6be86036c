"""Attention (Luong-style dot product or concat) and AdditiveAttention (Bahdanau), Keras 3's
arguments, weights (``scale``, ``concat_score_weight``), masks and numerics; MultiHeadAttention
lives in ``multi_head_attention`` and is re-exported here."""

from __future__ import annotations

import numpy as np

from irtool import ops, random
from irtool.layers.dropout import DROPOUT
from irtool.layers.layer import Layer
from irtool.layers.multi_head_attention import MultiHeadAttention, band_mask
from irtool.ops.core import SymbolicTensor, apply

__all__ = ["AdditiveAttention", "Attention", "MultiHeadAttention"]


def _eager_dropout(x, rate, layer):
    keep = random.layer_generator(layer, layer.seed).random(x.shape) >= rate
    return np.where(keep, x / np.asarray(1 - rate, x.dtype), 0).astype(x.dtype)


class Attention(Layer):
    """Dot-product (Luong) attention over ``[query, value]`` or ``[query, value, key]``."""

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = use_scale
        self.score_mode = score_mode
        self.dropout = dropout
        self.seed = seed
        if self.score_mode not in ["dot", "concat"]:
            raise ValueError(
                f"Invalid value for argument score_mode. Expected one of {{'dot', 'concat'}}. Received: "
                f"score_mode={score_mode}"
            )
        self.supports_masking = True
        self.scale = None
        self.concat_score_weight = None

    def build(self, input_shape):
        self._validate_inputs(input_shape)
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones", dtype=self.dtype)
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(
                name="concat_score_weight", shape=(), initializer="ones", dtype=self.dtype
            )
        self.built = True

    def _calculate_scores(self, query, key):
        if self.score_mode == "dot":
            scores = ops.matmul(query, ops.transpose(key, list(range(len(key.shape) - 2)) + [-1, -2]))
            return scores if self.scale is None else ops.multiply(scores, self.scale)
        q = ops.expand_dims(query, -2)  # [B, Tq, 1, dim]
        k = ops.expand_dims(key, -3)  # [B, 1, Tv, dim]
        summed = ops.add(q, k)
        if self.scale is not None:
            summed = ops.multiply(self.scale, summed)
        return ops.multiply(self.concat_score_weight, ops.sum(ops.tanh(summed), axis=-1))

    def _apply_scores(self, scores, value, scores_mask=None, training=False):
        if scores_mask is not None:
            padding = ops.logical_not(ops.cast(scores_mask, "bool"))
            big = np.asarray(65504.0 if scores.dtype == "float16" else 1.0e9, scores.dtype)
            if len(padding.shape) == 2:
                padding = ops.expand_dims(padding, -2)
            scores = ops.where(padding, ops.subtract(scores, big), scores)
        weights = ops.softmax(scores, axis=-1)
        dropped = weights
        if self.dropout > 0:
            if isinstance(weights, SymbolicTensor):
                dropped = apply(DROPOUT, [weights], rate=float(self.dropout), noise_shape=None, seed=self.seed)[0]
            elif training:
                dropped = _eager_dropout(weights, self.dropout, self)
        return ops.matmul(dropped, value), weights

    def _calculate_score_mask(self, scores, v_mask, use_causal_mask):
        if not use_causal_mask:
            return v_mask
        causal = band_mask(scores, upper=0)  # [1, Tq, Tv]
        if v_mask is None:
            return causal
        return ops.logical_and(ops.expand_dims(ops.cast(v_mask, "bool"), -2), causal)

    def call(self, inputs, mask=None, training=False, return_attention_scores=False, use_causal_mask=False):
        self._validate_inputs(inputs, mask)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        self._validate_shapes(q, v, k)
        q_mask = mask[0] if mask else None
        v_mask = mask[1] if mask else None
        scores = self._calculate_scores(q, k)
        scores_mask = self._calculate_score_mask(scores, v_mask, use_causal_mask)
        output, scores = self._apply_scores(scores, v, scores_mask, training)
        if q_mask is not None:
            output = ops.where(ops.expand_dims(ops.cast(q_mask, "bool"), -1), output, np.zeros((), output.dtype))
        return (output, scores) if return_attention_scores else output

    def compute_mask(self, inputs, mask=None):
        self._validate_inputs(inputs, mask)
        if mask is None or mask[0] is None:
            return None
        return mask[0]

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], input_shape[1][-1])

    def _validate_inputs(self, inputs, mask=None):
        name = type(self).__name__
        if not isinstance(inputs, list):
            raise ValueError(
                f"{name} layer must be called on a list of inputs, namely [query, value] or [query, value, key]. "
                f"Received: inputs={inputs}."
            )
        if len(inputs) < 2 or len(inputs) > 3:
            raise ValueError(
                f"{name} layer accepts inputs list of length 2 or 3, namely [query, value] or [query, value, key]. "
                f"Received length: {len(inputs)}."
            )
        if mask is not None:
            if not isinstance(mask, list):
                raise ValueError(
                    f"{name} layer mask must be a list, namely [query_mask, value_mask]. Received: mask={mask}."
                )
            if len(mask) < 2 or len(mask) > 3:
                raise ValueError(
                    f"{name} layer accepts mask list of length 2 or 3. Received: inputs={inputs}, mask={mask}."
                )

    def _validate_shapes(self, q, v, k):
        name = type(self).__name__
        if not len(q.shape) == len(v.shape) == len(k.shape) or len(q.shape) < 2:
            raise ValueError(
                f"{name}: query, value and key must have the same rank (at least 2). Received shapes: "
                f"query={tuple(q.shape)}, value={tuple(v.shape)}, key={tuple(k.shape)}"
            )
        if None not in (q.shape[-1], k.shape[-1]) and q.shape[-1] != k.shape[-1]:
            raise ValueError(
                f"{name}: the last dimension of query and key must match. Received shapes: query={tuple(q.shape)}, "
                f"key={tuple(k.shape)}"
            )
        if None not in (v.shape[-2], k.shape[-2]) and v.shape[-2] != k.shape[-2]:
            raise ValueError(
                f"{name}: value and key must have the same number of steps. Received shapes: value={tuple(v.shape)}, "
                f"key={tuple(k.shape)}"
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}
        )
        return config


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: ``sum(scale * tanh(query + key), -1)`` scores."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        self._validate_inputs(input_shape)
        dim = input_shape[0][-1]
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=[dim], initializer="glorot_uniform", dtype=self.dtype)
        self.built = True

    def _calculate_scores(self, query, key):
        q = ops.expand_dims(query, -2)
        k = ops.expand_dims(key, -3)
        t = ops.tanh(ops.add(q, k))
        return ops.sum(ops.multiply(self.scale, t) if self.use_scale else t, axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
