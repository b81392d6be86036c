"""ReversibleEmbedding: an Embedding that, called with ``reverse=True``, projects hidden states
back to vocabulary logits (Keras 3's ``keras.layers.ReversibleEmbedding``)."""

from __future__ import annotations

from irtool import ops
from irtool.layers.embedding import Embedding


class ReversibleEmbedding(Embedding):
    """``embeddings[ids]`` forward; ``hidden @ embeddings.T`` (tied) or ``hidden @ reverse_embeddings``
    with ``reverse=True``, optionally soft-capped as ``tanh(logits / cap) * cap``.

    >>> import numpy as np
    >>> layer = ReversibleEmbedding(10, 4)
    >>> layer(layer(np.array([[1, 2]])), reverse=True).shape
    (1, 2, 10)
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        reverse_dtype=None,
        logit_soft_cap=None,
        **kwargs,
    ):
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            **kwargs,
        )
        self.tie_weights = tie_weights
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap
        self._reverse_call = False

    def build(self, input_shape=None):
        if self.built:
            return
        super().build(input_shape)
        if not self.tie_weights:
            # Keras gives the untied projection the embeddings' initializer but no regularizer or constraint.
            self.reverse_embeddings = self.add_weight(
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
                name="reverse_embeddings",
                trainable=True,
            )

    def call(self, inputs, reverse=False):
        # compute_mask runs right after call within the same trace and has no call arguments:
        # this flag tells it which direction the call went (Keras masks only the forward output).
        self._reverse_call = reverse
        if not reverse:
            return super().call(inputs)
        kernel = ops.transpose(self.embeddings) if self.tie_weights else self.reverse_embeddings
        if self.reverse_dtype is not None:
            inputs = ops.cast(inputs, self.reverse_dtype)
            kernel = ops.cast(kernel, self.reverse_dtype)
        logits = ops.matmul(inputs, kernel)
        if self.logit_soft_cap is not None:
            cap = self.logit_soft_cap
            logits = ops.multiply(ops.tanh(ops.divide(logits, cap)), cap)
        return logits

    def compute_mask(self, inputs, previous_mask=None):
        if self._reverse_call:
            return None
        return super().compute_mask(inputs, previous_mask)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*tuple(input_shape)[:-1], self.input_dim)
        return super().compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tie_weights": self.tie_weights,
                "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap,
            }
        )
        return config
