"""Convolutional LSTMs: ``ConvLSTMCell`` and ``ConvLSTM1D/2D/3D`` (Keras 3 arguments and weights).

The cell is Keras' LSTM step with convolutions in place of the matrix products: the input is
convolved with ``kernel`` (strides, padding, dilation as given) and the hidden state with
``recurrent_kernel`` (stride 1, ``"same"``), gate blocks ``i, f, c, o`` along the last kernel
axis, ``unit_forget_bias`` starting the forget bias at 1. The layers are ``RNN(ConvLSTMCell)``, so
they run on the ``scan`` primitive (an ONNX ``Scan`` whose body holds the ``Conv`` nodes) and
handle masks, ``go_backwards`` and ``return_state`` like every generic RNN. Dropout arguments are
stored for configs and have no effect (as at inference).
"""

from __future__ import annotations

import numpy as np

from irtool import activations, constraints, initializers, ops, regularizers
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer, dtype_from_config
from irtool.layers.recurrent import RNN
from irtool.ops.conv_arithmetic import conv_output_length
from irtool.ops.conv_utils import standardize_data_format, standardize_padding, standardize_tuple

_OPTIONAL = (
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
)


class ConvLSTMCell(Layer):
    """One ConvLSTM step on ``(batch, *spatial, channels)`` inputs (or channels first).

    Weights: ``kernel (*kernel_size, C, 4 * filters)``, ``recurrent_kernel (*kernel_size, filters,
    4 * filters)``, ``bias (4 * filters,)``. ``state_size`` is the two state shapes ``h, c`` once
    built (the convolution's output shape per sample), ``-1`` before, as in Keras.
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rank > 3:
            raise ValueError(f"Rank {rank} convolutions are not currently implemented. Received: rank={rank}")
        self.rank = rank
        self.filters = filters
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides", allow_zero=True)
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "Specifying `strides > 1` is not compatible with `dilation_rate > 1`. Please provide `strides=1` or "
                f"`dilation_rate=1`. Received: strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = unit_forget_bias
        for name, value in zip(
            _OPTIONAL,
            (
                kernel_regularizer,
                recurrent_regularizer,
                bias_regularizer,
                kernel_constraint,
                recurrent_constraint,
                bias_constraint,
            ),
        ):
            setattr(self, name, (regularizers.get if name.endswith("_regularizer") else constraints.get)(value))
        self.dropout = min(1.0, max(0.0, dropout))
        self.recurrent_dropout = min(1.0, max(0.0, recurrent_dropout))
        self.seed = seed
        self.state_size = -1  # the state shapes are known once the input's spatial shape is

    def _spatial(self, shape):
        return tuple(shape[2:]) if self.data_format == "channels_first" else tuple(shape[1:-1])

    def build(self, inputs_shape, states_shape=None):
        spatial = self._spatial(inputs_shape)
        channels = inputs_shape[1] if self.data_format == "channels_first" else inputs_shape[-1]
        if None in spatial:
            raise ValueError(
                "ConvLSTM layers only support static input shapes for the spatial dimension. Received invalid input "
                f"shape: input_shape={inputs_shape}"
            )
        if channels is None:
            raise ValueError(
                "The channel dimension of the inputs (last axis) should be defined. Found None. Full input shape "
                f"received: input_shape={inputs_shape}"
            )
        self.input_dim = channels
        out = tuple(
            conv_output_length(n, k, s, d, self.padding)
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        state = (self.filters, *out) if self.data_format == "channels_first" else (*out, self.filters)
        self.state_size = [state, state]
        self.kernel = self.add_weight(
            shape=self.kernel_size + (channels, 4 * self.filters),
            initializer=self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=self.kernel_size + (self.filters, 4 * self.filters),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(4 * self.filters,),
                name="bias",
                initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.built = True

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, n = self.bias_initializer, self.filters

        def bias_initializer(shape, dtype=None):
            return np.concatenate([base((n,), dtype=dtype), np.ones((n,), dtype=dtype), base((2 * n,), dtype=dtype)])

        return bias_initializer

    def _bias_shape(self):
        if self.data_format == "channels_last":
            return (1,) * (self.rank + 1) + (4 * self.filters,)
        return (1, 4 * self.filters) + (1,) * self.rank

    def call(self, inputs, states, training=False):
        h, c = states[0], states[1]
        # All four gates in one convolution each (the kernels' gate blocks are contiguous on the
        # last axis, so the outputs split into the same i, f, c, o blocks as Keras' four convs).
        x = ops.conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if self.bias is not None:
            x = x + ops.reshape(self.bias, self._bias_shape())
        r = ops.conv(h, self.recurrent_kernel, strides=1, padding="same", data_format=self.data_format)
        axis = 1 if self.data_format == "channels_first" else -1
        x_i, x_f, x_c, x_o = ops.split(x + r, 4, axis=axis)
        i = self.recurrent_activation(x_i)
        f = self.recurrent_activation(x_f)
        c = f * c + i * self.activation(x_c)
        o = self.recurrent_activation(x_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "activation": activations.serialize(self.activation),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                **{
                    name: (regularizers.serialize if name.endswith("_regularizer") else constraints.serialize)(
                        getattr(self, name)
                    )
                    for name in _OPTIONAL
                },
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed,
            }
        )
        return config


_CELL_ARGS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "unit_forget_bias",
    *_OPTIONAL,
    "dropout",
    "recurrent_dropout",
    "seed",
)


class ConvLSTM(RNN):
    """``RNN(ConvLSTMCell(rank, ...))`` with the cell's arguments on the layer, as Keras' ``ConvLSTM``."""

    rank = 2

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        **kwargs,
    ):
        arguments = locals()
        cell = ConvLSTMCell(
            self.rank,
            **{name: arguments[name] for name in _CELL_ARGS},
            name="conv_lstm_cell",
            dtype=kwargs.get("dtype"),
        )
        for key in ("cell", "unroll", "zero_output_for_mask"):
            kwargs.pop(key, None)
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = InputSpec(ndim=self.rank + 3)

    def __getattr__(self, name):
        # Keras exposes the cell's arguments on the layer (``layer.filters``).
        if name in _CELL_ARGS:
            cell = self.__dict__.get("cell")
            if cell is not None:
                return getattr(cell, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config.update(cell_config)
        config["activity_regularizer"] = regularizers.serialize(getattr(self, "activity_regularizer", None))
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**dtype_from_config(dict(config)))


class ConvLSTM1D(ConvLSTM):
    """1D convolutional LSTM over ``(batch, time, steps, channels)`` inputs."""

    rank = 1


class ConvLSTM2D(ConvLSTM):
    """2D convolutional LSTM over ``(batch, time, rows, cols, channels)`` inputs."""

    rank = 2


class ConvLSTM3D(ConvLSTM):
    """3D convolutional LSTM over ``(batch, time, depth, rows, cols, channels)`` inputs."""

    rank = 3
