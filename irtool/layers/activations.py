"""Activation layers with arguments: ReLU, LeakyReLU, PReLU, ELU and Softmax (Keras 3's
``keras.layers.activations``). The plain ``Activation`` layer lives in ``activation.py``."""

from __future__ import annotations

import warnings

from irtool import constraints, initializers, ops, regularizers
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer
from irtool.ops.prelu import prelu


class ReLU(Layer):
    """``max_value``-capped ReLU with a ``negative_slope`` below ``threshold`` (Keras' formula):
    ``x`` if ``x > threshold`` (clipped to ``max_value``), else ``negative_slope * (x - threshold)``."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: max_value={max_value}")
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(
                f"negative_slope of a ReLU layer cannot be None or a negative value. Received: "
                f"negative_slope={negative_slope}"
            )
        if threshold is None or threshold < 0.0:
            raise ValueError(
                f"threshold of a ReLU layer cannot be None or a negative value. Received: threshold={threshold}"
            )
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        slope, max_value, threshold = self.negative_slope, self.max_value, self.threshold
        if slope != 0.0 and max_value is None and threshold == 0:
            return ops.leaky_relu(inputs, negative_slope=slope)
        if threshold != 0:
            x = ops.where(ops.greater(inputs, threshold), inputs, 0)
        elif max_value == 6:
            x, max_value = ops.relu6(inputs), None
        else:
            x = ops.relu(inputs)
        if max_value is not None:
            x = ops.clip(x, 0.0, max_value)
        if slope != 0.0:
            negative = ops.relu(ops.subtract(threshold, inputs) if threshold != 0 else ops.negative(inputs))
            x = ops.subtract(x, ops.multiply(negative, slope))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold})
        return config


class LeakyReLU(Layer):
    """``x`` if ``x >= 0`` else ``negative_slope * x`` (default 0.3, as Keras; ONNX ``LeakyRelu``)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                "The negative_slope value of a Leaky ReLU layer cannot be None or negative value. Expected a float. "
                f"Received: negative_slope={negative_slope}"
            )
        self.negative_slope = negative_slope
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return ops.leaky_relu(inputs, negative_slope=self.negative_slope)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class PReLU(Layer):
    """Leaky ReLU with a learned slope ``alpha`` of the input's shape without the batch axis
    (size 1 along ``shared_axes``); ONNX ``PRelu``."""

    def __init__(
        self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        elif not isinstance(shared_axes, (list, tuple)):
            self.shared_axes = [shared_axes]
        else:
            self.shared_axes = list(shared_axes)

    def build(self, input_shape):
        param_shape = list(input_shape[1:])
        for i in self.shared_axes or ():
            if not 1 <= i < len(input_shape):
                raise ValueError(
                    f"PReLU shared_axes must be axes of the input other than the batch axis (1 to "
                    f"{len(input_shape) - 1}). Received: shared_axes={self.shared_axes}, input_shape={tuple(input_shape)}"
                )
            param_shape[i - 1] = 1
        if None in param_shape:
            raise ValueError(
                "PReLU needs every non-shared input dimension to be defined (its alpha has that shape). "
                f"Received: input_shape={tuple(input_shape)}, shared_axes={self.shared_axes}. Share the dynamic axes."
            )
        self.alpha = self.add_weight(
            shape=param_shape,
            name="alpha",
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )
        axes = {}
        if self.shared_axes:
            for i in range(1, len(input_shape)):
                if i not in self.shared_axes:
                    axes[i] = input_shape[i]
        self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)
        self.built = True

    def call(self, inputs):
        return prelu(inputs, self.alpha)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes,
            }
        )
        return config


class ELU(Layer):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)`` (ONNX ``Elu``)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return ops.elu(inputs, alpha=self.alpha)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


def _large_negative_number(dtype: str) -> float:
    return -3e4 if dtype == "float16" else -1e9


class Softmax(Layer):
    """Softmax over ``axis`` (int or tuple). A ``mask`` (bool, or float > 0.5 = keep) sets the
    masked logits to a large negative number before, and the outputs to 0 after, as Keras."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.supports_masking = True
        self.built = True

    def call(self, inputs, mask=None):
        if mask is not None:
            if len(mask.shape) > len(inputs.shape):
                raise ValueError(
                    "The `mask` must be broadcastable to `inputs` and must not have more dimensions. "
                    f"Received: inputs.shape={tuple(inputs.shape)}, mask.shape={tuple(mask.shape)}"
                )
            for m, i in zip(tuple(mask.shape)[::-1], tuple(inputs.shape)[::-1]):
                if m is not None and i is not None and m not in (1, i):
                    raise ValueError(
                        "The `mask` must be broadcastable to `inputs`. Each mask dimension must be 1 or match the "
                        f"corresponding input dimension. Received: inputs.shape={tuple(inputs.shape)}, "
                        f"mask.shape={tuple(mask.shape)}"
                    )
            if str(mask.dtype) != "bool":
                mask = ops.greater(mask, 0.5)
            inputs = ops.where(mask, inputs, _large_negative_number(str(inputs.dtype)))
        if isinstance(self.axis, (tuple, list)) and len(self.axis) > 1:
            shifted = ops.subtract(inputs, ops.max(inputs, axis=tuple(self.axis), keepdims=True))
            e = ops.exp(shifted)
            outputs = ops.divide(e, ops.sum(e, axis=tuple(self.axis), keepdims=True))
        else:
            axis = self.axis[0] if isinstance(self.axis, (tuple, list)) else self.axis
            outputs = ops.softmax(inputs, axis=axis)
        if mask is not None:
            outputs = ops.where(mask, outputs, 0.0)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
