"""Embedding: maps integer ids to rows of an ``(input_dim, output_dim)`` table (ONNX ``Gather``)."""

from __future__ import annotations

import warnings

from irtool import constraints, initializers, ops, regularizers
from irtool.layers.layer import Layer


class Embedding(Layer):
    """Turns ids into dense vectors: ``embeddings[inputs]``.

    Inputs of any integer dtype are used as they are when int32/int64 and cast to int32
    otherwise; float inputs are cast to int32 (truncated), as Keras does. With
    ``mask_zero=True`` the output carries the mask ``inputs != 0`` for downstream layers.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"`{name}` must be a positive integer. Received: {name}={value} (of type {type(value).__name__})."
                )
        input_length = kwargs.pop("input_length", None)
        if input_length is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        if lora_rank is not None or quantization_config is not None:
            raise NotImplementedError("Embedding: LoRA and quantization are not supported by irtool.")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = mask_zero
        self.supports_masking = mask_zero
        self.autocast = False
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.quantization_config = quantization_config
        if weights is not None:
            self.build()
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape=None):
        if self.built:
            return
        self.embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
            name="embeddings",
        )
        self.built = True

    def call(self, inputs):
        if str(inputs.dtype) not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return ops.cast(ops.take(self.embeddings, inputs, axis=0), self.dtype)

    def compute_mask(self, inputs, previous_mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
                "mask_zero": self.mask_zero,
                "quantization_config": None,
            }
        )
        return config
