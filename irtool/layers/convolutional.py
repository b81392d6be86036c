"""Convolution layers: Conv1D/2D/3D (and, from ``convolutional_transpose``, Conv1D/2D/3DTranspose).

Each call is one ``conv`` primitive with the bias as its third input (so it lowers into the
ONNX Conv itself), followed by the activation as its own op (so ONNX Runtime fuses
Conv+Relu). Weights: ``kernel (k..., in/groups, filters)`` and ``bias (filters,)``, in Keras' order.
"""

from __future__ import annotations

from irtool import activations, constraints, initializers, regularizers
from irtool.layers.convolutional_base import _args, _check_dilation, _check_sizes, _positive_int, _SpatialLayer
from irtool.layers.convolutional_transpose import (
    BaseConvTranspose,
    Conv1DTranspose,
    Conv2DTranspose,
    Conv3DTranspose,
    Convolution1DTranspose,
    Convolution2DTranspose,
    Convolution3DTranspose,
)
from irtool.ops.conv import conv
from irtool.ops.conv_utils import conv_output_length

__all__ = [
    "BaseConv",
    "BaseConvTranspose",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "Convolution1D",
    "Convolution2D",
    "Convolution3D",
    "Convolution1DTranspose",
    "Convolution2DTranspose",
    "Convolution3DTranspose",
]


class BaseConv(_SpatialLayer):
    """N-D convolution layer (Keras' ``BaseConv``): ``activation(conv(x, kernel) + bias)``."""

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.filters = filters
        self.groups = groups
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        _positive_int(filters, "filters", f"filters={filters}")
        if groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        if filters is not None and filters % groups != 0:
            raise ValueError(
                "The number of filters must be evenly divisible by the number of groups. "
                f"Received: groups={groups}, filters={filters}."
            )
        _check_sizes(self.kernel_size, self.strides)
        _check_dilation(self.strides, self.dilation_rate)

    def _allow_causal(self) -> bool:
        return self.rank == 1

    def build(self, input_shape):
        channels = self._input_channel(input_shape)
        if channels % self.groups != 0:
            raise ValueError(
                "The number of input channels must be evenly divisible by the number of groups. Received "
                f"groups={self.groups}, but the input has {channels} channels (full input shape is "
                f"{tuple(input_shape)})."
            )
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.built = True

    def call(self, inputs):
        x = conv(inputs, self.kernel, self.strides, self.padding, self.data_format, self.dilation_rate, bias=self.bias)
        return self._activate(x)

    def compute_output_shape(self, input_shape):
        padding = self.padding
        return self._output_shape(input_shape, self.filters, lambda n, k, s, d: conv_output_length(n, k, s, d, padding))

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, **self._geometry_config(), "groups": self.groups})
        config.update(
            {
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
            }
        )
        return config


class Conv1D(BaseConv):
    """1D convolution over ``(batch, steps, channels)``; ``padding="causal"`` pads ``(k-1)*dilation``
    steps at the start, so output ``t`` sees only inputs up to ``t``."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(1, **_args(locals()))


class Conv2D(BaseConv):
    """2D convolution over ``(batch, height, width, channels)`` (or channels_first)."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(2, **_args(locals()))


class Conv3D(BaseConv):
    """3D convolution over ``(batch, d1, d2, d3, channels)`` (or channels_first)."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(3, **_args(locals()))


Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
