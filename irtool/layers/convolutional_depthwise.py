"""Depthwise and separable convolution layers: DepthwiseConv1D/2D, SeparableConv1D/2D.

DepthwiseConv: weights ``kernel (k..., C, depth_multiplier)`` and ``bias (C*depth_multiplier,)``;
one ``depthwise_conv`` primitive (an ONNX Conv with ``group=C``) with the bias fused.
SeparableConv: ``depthwise_kernel (k..., C, dm)``, ``pointwise_kernel (1.., C*dm, filters)``,
``bias (filters,)``; a depthwise conv followed by a 1x1 conv that carries the bias.
"""

from __future__ import annotations

from irtool import activations, constraints, initializers, regularizers
from irtool.layers.convolutional_base import _args, _check_sizes, _positive_int, _SpatialLayer
from irtool.ops.conv import depthwise_conv, separable_conv
from irtool.ops.conv_utils import conv_output_length


def _regularization_config(layer, names) -> dict:
    return {
        name: (regularizers.serialize if name.endswith("_regularizer") else constraints.serialize)(getattr(layer, name))
        for name in names
    }


class BaseDepthwiseConv(_SpatialLayer):
    """N-D depthwise convolution layer (Keras' ``BaseDepthwiseConv``)."""

    def __init__(
        self,
        rank,
        depth_multiplier,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.depth_multiplier = depth_multiplier
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        _positive_int(depth_multiplier, "depth_multiplier", f"depth_multiplier={depth_multiplier}")
        _check_sizes(self.kernel_size, self.strides)

    def build(self, input_shape):
        channels = self._input_channel(input_shape)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.depth_multiplier * channels,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.built = True

    def call(self, inputs):
        x = depthwise_conv(
            inputs, self.kernel, self.strides, self.padding, self.data_format, self.dilation_rate, bias=self.bias
        )
        return self._activate(x)

    def compute_output_shape(self, input_shape):
        channels = tuple(input_shape)[self._channel_axis]
        padding = self.padding
        return self._output_shape(
            input_shape,
            None if channels is None else channels * self.depth_multiplier,
            lambda n, k, s, d: conv_output_length(n, k, s, d, padding),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, **self._geometry_config()})
        config.update(
            {
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                **_regularization_config(
                    self, ["depthwise_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_constraint"]
                ),
                "bias_constraint": constraints.serialize(self.bias_constraint),
            }
        )
        return config


class DepthwiseConv1D(BaseDepthwiseConv):
    """1D depthwise convolution: each input channel convolved with ``depth_multiplier`` filters."""

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(1, **_args(locals()))


class DepthwiseConv2D(BaseDepthwiseConv):
    """2D depthwise convolution: each input channel convolved with ``depth_multiplier`` filters."""

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(2, **_args(locals()))


class BaseSeparableConv(_SpatialLayer):
    """N-D separable convolution layer (Keras' ``BaseSeparableConv``)."""

    def __init__(
        self,
        rank,
        depth_multiplier,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.depth_multiplier = depth_multiplier
        self.filters = filters
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        _positive_int(depth_multiplier, "depth_multiplier", f"depth_multiplier={depth_multiplier}")
        _positive_int(filters, "filters", f"filters={filters}")
        if not all(self.kernel_size):
            raise ValueError(f"The argument `kernel_size` cannot contain 0. Received: kernel_size={self.kernel_size}.")
        if not all(self.strides):
            raise ValueError(f"The argument `strides` cannot contains 0(s). Received: strides={self.strides}")

    def build(self, input_shape):
        channels = self._input_channel(input_shape)
        self.compute_output_shape(input_shape)
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel",
            shape=self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self.pointwise_kernel = self.add_weight(
            name="pointwise_kernel",
            shape=(1,) * self.rank + (self.depth_multiplier * channels, self.filters),
            initializer=self.pointwise_initializer,
            regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint,
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
        x = separable_conv(
            inputs,
            self.depthwise_kernel,
            self.pointwise_kernel,
            self.strides,
            self.padding,
            self.data_format,
            self.dilation_rate,
            bias=self.bias,
        )
        return self._activate(x)

    def compute_output_shape(self, input_shape):
        padding = self.padding
        return self._output_shape(input_shape, self.filters, lambda n, k, s, d: conv_output_length(n, k, s, d, padding))

    def get_config(self):
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, "filters": self.filters, **self._geometry_config()})
        config.update(
            {
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                **_regularization_config(
                    self,
                    [
                        "depthwise_regularizer",
                        "pointwise_regularizer",
                        "bias_regularizer",
                        "activity_regularizer",
                        "depthwise_constraint",
                        "pointwise_constraint",
                        "bias_constraint",
                    ],
                ),
            }
        )
        return config


class SeparableConv1D(BaseSeparableConv):
    """1D separable convolution: a depthwise conv, then a pointwise (1-wide) conv to ``filters``."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(1, **_args(locals()))


class SeparableConv2D(BaseSeparableConv):
    """2D separable convolution: a depthwise conv, then a pointwise (1x1) conv to ``filters``."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(2, **_args(locals()))


SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
