"""Recurrent cells (SimpleRNNCell, LSTMCell, GRUCell): the weights of the recurrent layers.

As in Keras 3, ``LSTM`` keeps its weights on a cell sublayer (``lstm/lstm_cell/kernel``); the
layer runs the whole sequence with one fused primitive (``irtool.ops.rnn``), while the cell's own
``call(inputs, states)`` is one time step written in ops (usable on its own, eagerly or traced).
Dropout arguments are stored for configs; they have no effect at inference.
"""

from __future__ import annotations

import numpy as np

from irtool import activations, constraints, initializers, ops, regularizers
from irtool.layers.layer import Layer

_NONE_ARGS = (
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
)


class _Cell(Layer):
    gates = 1
    n_states = 1

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
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
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(
                f"Received an invalid value for argument `units`, expected a positive integer, got {units}."
            )
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        for name, value in zip(
            _NONE_ARGS,
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
        self.state_size = [units] * self.n_states if self.n_states > 1 else units
        self.output_size = units

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = (
            self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )
        self.built = True

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units), dtype=self.dtype) for _ in range(self.n_states)]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": activations.serialize(self.activation),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                **{
                    name: (regularizers.serialize if name.endswith("_regularizer") else constraints.serialize)(
                        getattr(self, name)
                    )
                    for name in _NONE_ARGS
                },
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed,
            }
        )
        return config


def _states(states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


class SimpleRNNCell(_Cell):
    """``h = activation(x @ kernel + h @ recurrent_kernel + bias)``."""

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)

    def call(self, sequence, states, training=False):
        (h,) = _states(states)[:1]
        z = ops.matmul(sequence, self.kernel) + ops.matmul(h, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        out = self.activation(z)
        return out, [out] if isinstance(states, (list, tuple)) else out

    def get_config(self):
        config = super().get_config()
        del config["recurrent_activation"]
        return config


class LSTMCell(_Cell):
    """Keras' LSTM step; gate blocks ``i, f, c, o``; ``unit_forget_bias`` starts the forget bias at 1."""

    gates = 4
    n_states = 2

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        def bias_initializer(shape, dtype=None):
            ones = np.ones((units,), dtype=dtype)
            return np.concatenate([base((units,), dtype=dtype), ones, base((units * 2,), dtype=dtype)])

        return bias_initializer

    def call(self, inputs, states, training=False):
        h, c = _states(states)
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = self.recurrent_activation(f) * c + self.recurrent_activation(i) * self.activation(g)
        h = self.recurrent_activation(o) * self.activation(c)
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


class GRUCell(_Cell):
    """Keras' GRU step; gate blocks ``z, r, h``; ``reset_after`` applies the reset gate after the
    recurrent matmul (bias ``(2, 3u)``: input and recurrent), else before it (bias ``(3u,)``)."""

    gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states, training=False):
        (h,) = _states(states)[:1]
        u = self.units
        x = ops.matmul(inputs, self.kernel)
        input_bias = recurrent_bias = None
        if self.bias is not None:
            input_bias, recurrent_bias = (self.bias[0], self.bias[1]) if self.reset_after else (self.bias, None)
            x = x + input_bias
        x_z, x_r, x_h = ops.split(x, 3, axis=-1)
        if self.reset_after:
            inner = ops.matmul(h, self.recurrent_kernel)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            hh = self.activation(x_h + r * r_h)
        else:
            inner = ops.matmul(h, self.recurrent_kernel[:, : 2 * u])
            z = self.recurrent_activation(x_z + inner[:, :u])
            r = self.recurrent_activation(x_r + inner[:, u:])
            hh = self.activation(x_h + ops.matmul(r * h, self.recurrent_kernel[:, 2 * u :]))
        h = z * h + (1.0 - z) * hh
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config
