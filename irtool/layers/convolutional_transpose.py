"""Transposed convolution layers: Conv1DTranspose, Conv2DTranspose, Conv3DTranspose.

Weights ``kernel (k..., filters, in)`` and ``bias (filters,)``; one ``conv_transpose``
primitive (ONNX ConvTranspose with explicit pads/output_padding reproducing Keras' output
shapes) with the bias fused, then the activation.
"""

from __future__ import annotations

from irtool import activations, constraints, initializers, regularizers
from irtool.layers.convolutional_base import _args, _check_dilation, _check_sizes, _positive_int, _SpatialLayer
from irtool.ops.conv import conv_transpose
from irtool.ops.conv_utils import conv_transpose_output_length, standardize_tuple


class BaseConvTranspose(_SpatialLayer):
    """N-D transposed convolution layer (Keras' ``BaseConvTranspose``)."""

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=1,
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
        self._init_geometry(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias)
        self.output_padding = (
            None if output_padding is None else standardize_tuple(output_padding, rank, "output_padding", True)
        )
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        _positive_int(filters, "filters", f"filters={filters}")
        _check_sizes(self.kernel_size, self.strides, strides_note=".")
        if self.output_padding is not None:
            for i, (p, s) in enumerate(zip(self.output_padding, self.strides)):
                if p >= s:
                    raise ValueError(
                        "`output_padding` must be strictly less than `strides` for all dimensions. At dimension "
                        f"{i}, `output_padding` is {p} but `strides` is {s}. Received: "
                        f"output_padding={self.output_padding}, strides={self.strides}"
                    )
        _check_dilation(self.strides, self.dilation_rate)

    def build(self, input_shape):
        channels = self._input_channel(input_shape)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (self.filters, channels),
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
        x = conv_transpose(
            inputs,
            self.kernel,
            self.strides,
            self.padding,
            self.output_padding,
            self.data_format,
            self.dilation_rate,
            bias=self.bias,
        )
        return self._activate(x)

    def compute_output_shape(self, input_shape):
        pads = iter(self.output_padding or (None,) * self.rank)
        padding = self.padding
        return self._output_shape(
            input_shape,
            self.filters,
            lambda n, k, s, d: conv_transpose_output_length(n, k, s, d, padding, next(pads)),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "output_padding": self.output_padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
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


class Conv1DTranspose(BaseConvTranspose):
    """1D transposed convolution (deconvolution)."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=1,
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


class Conv2DTranspose(BaseConvTranspose):
    """2D transposed convolution (deconvolution)."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=(1, 1),
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


class Conv3DTranspose(BaseConvTranspose):
    """3D transposed convolution (deconvolution). Note Keras' argument order: ``data_format``
    comes before ``output_padding`` here."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format=None,
        output_padding=None,
        dilation_rate=(1, 1, 1),
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


Convolution1DTranspose, Convolution2DTranspose, Convolution3DTranspose = (
    Conv1DTranspose,
    Conv2DTranspose,
    Conv3DTranspose,
)
