"""Recurrent layers: SimpleRNN, LSTM and GRU (Keras 3 arguments, defaults and weight layouts).

Each layer holds its weights on a cell sublayer (``lstm/lstm_cell/kernel``, ...) and runs the
whole sequence with one fused primitive of ``irtool.ops.rnn``, which is exact Keras in NumPy
and one native ONNX ``RNN``/``LSTM``/``GRU`` node with a dynamic time axis. Masks (``mask=`` or a
mask attached to the input, e.g. from ``Embedding(mask_zero=True)``) follow Keras, in ONNX too:
the native node for right-padded masks, a ``Scan`` for any other (see ``irtool.ops.rnn``). ``dropout`` and
``recurrent_dropout`` act like Keras 3's when training (masks drawn once per call and shared by
all steps; one per gate when ``recurrent_dropout`` is set) and not at inference; ``unroll`` and
``use_cudnn`` are accepted and ignored; ``stateful=True`` is not supported.
"""

from __future__ import annotations

import contextlib

from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer, _paths, dtype_from_config
from irtool.layers.rnn_cells import GRUCell, LSTMCell, SimpleRNNCell
from irtool.ops import rnn as rnn_ops

_CELL_ARGS = (
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
)


@contextlib.contextmanager
def weight_scope(*layers):
    """Name weights created inside by the chain ``layers`` (``lstm/lstm_cell/kernel``), as Keras."""
    pushed = 0
    for layer in layers:
        if not (_paths.names and _paths.names[-1] == layer.name):
            _paths.names.append(layer.name)
            pushed += 1
    try:
        yield
    finally:
        for _ in range(pushed):
            _paths.names.pop()


class _RNN(Layer):
    """Base of the fused recurrent layers: ``cell_class`` holds the weights, ``kind`` names the op."""

    kind = "simple_rnn"
    cell_class = SimpleRNNCell

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        activity_regularizer=None,
        use_cudnn="auto",
        cell_kwargs=None,
        **kwargs,
    ):
        if stateful:
            raise ValueError(f"{type(self).__name__}(stateful=True) is not supported by irtool.")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(
                "Invalid valid received for argument `use_cudnn`. Expected one of {'auto', True, False}. "
                f"Received: use_cudnn={use_cudnn}"
            )
        kwargs.pop("implementation", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.cell = self.cell_class(
            units, dtype=self.dtype, trainable=self.trainable, name=f"{self.kind}_cell", **(cell_kwargs or {})
        )
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = False
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        self.use_cudnn = use_cudnn
        self.supports_masking = True
        self.input_spec = InputSpec(ndim=3)

    # Keras exposes the cell's arguments on the layer.
    def __getattr__(self, name):
        if name in _CELL_ARGS or name in ("units", "unit_forget_bias", "reset_after"):
            cell = self.__dict__.get("cell")
            if cell is not None:
                return getattr(cell, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def state_size(self):
        return self.cell.state_size

    def build(self, sequences_shape, initial_state_shape=None):
        if not self.cell.built:
            step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
            with weight_scope(self, self.cell):
                self.cell.build(step_shape)
            self.cell.built = True
        self.built = True

    def call(self, sequences, initial_state=None, mask=None, training=None):
        return self._fused(sequences, initial_state, mask, training=training)

    def _fused(self, sequences, initial_state=None, mask=None, return_state=None, **overrides):
        """Run the fused primitive; ``overrides`` are extra arguments of ``ops.rnn.recurrent``."""
        cell = self.cell
        if initial_state is not None and not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        options = dict(
            activation=cell.activation,
            recurrent_activation=getattr(cell, "recurrent_activation", None),
            reset_after=getattr(cell, "reset_after", False),
            return_sequences=self.return_sequences,
            return_state=self.return_state if return_state is None else return_state,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            dropout=getattr(cell, "dropout", 0.0),
            recurrent_dropout=getattr(cell, "recurrent_dropout", 0.0),
        )
        options.update(overrides)
        return rnn_ops.recurrent(
            self.kind, sequences, cell.kernel, cell.recurrent_kernel, cell.bias, initial_state, mask, **options
        )

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.cell.n_states
        return output_mask

    def get_initial_state(self, batch_size):
        return self.cell.get_initial_state(batch_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "return_sequences": self.return_sequences,
                "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "stateful": self.stateful,
                "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask,
            }
        )
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config.update(cell_config)
        config["activity_regularizer"] = None
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config = dtype_from_config(config)
        return cls(**config)


def _split_cell_kwargs(names, values: dict) -> dict:
    return {k: values[k] for k in names}


class SimpleRNN(_RNN):
    """Fully-connected RNN whose output is fed back as input: weights ``simple_rnn_cell/kernel (F, u)``,
    ``recurrent_kernel (u, u)``, ``bias (u,)``. Returns ``output`` or ``[output, h]``."""

    kind = "simple_rnn"
    cell_class = SimpleRNNCell

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        **kwargs,
    ):
        kwargs.pop("recurrent_activation", None)
        cell_kwargs = _split_cell_kwargs([a for a in _CELL_ARGS if a != "recurrent_activation"], locals())
        super().__init__(
            units,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            unroll,
            activity_regularizer=activity_regularizer,
            cell_kwargs=cell_kwargs,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["seed"]  # as Keras' SimpleRNN
        return config


class LSTM(_RNN):
    """Long Short-Term Memory (Hochreiter 1997): weights ``lstm_cell/kernel (F, 4u)``,
    ``recurrent_kernel (u, 4u)``, ``bias (4u,)`` with gate blocks ``i, f, c, o``.
    Returns ``output`` or ``[output, h, c]``."""

    kind = "lstm"
    cell_class = LSTMCell

    def __init__(
        self,
        units,
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
        unroll=False,
        use_cudnn="auto",
        **kwargs,
    ):
        cell_kwargs = _split_cell_kwargs(_CELL_ARGS + ("unit_forget_bias",), locals())
        super().__init__(
            units,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            unroll,
            activity_regularizer=activity_regularizer,
            use_cudnn=use_cudnn,
            cell_kwargs=cell_kwargs,
            **kwargs,
        )


class GRU(_RNN):
    """Gated Recurrent Unit (Cho 2014): weights ``gru_cell/kernel (F, 3u)``, ``recurrent_kernel
    (u, 3u)``, ``bias`` ``(2, 3u)`` with ``reset_after=True`` (default) or ``(3u,)``; gate blocks
    ``z, r, h``. Returns ``output`` or ``[output, h]``."""

    kind = "gru"
    cell_class = GRUCell

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
        unroll=False,
        reset_after=True,
        use_cudnn="auto",
        **kwargs,
    ):
        cell_kwargs = _split_cell_kwargs(_CELL_ARGS + ("reset_after",), locals())
        super().__init__(
            units,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            unroll,
            activity_regularizer=activity_regularizer,
            use_cudnn=use_cudnn,
            cell_kwargs=cell_kwargs,
            **kwargs,
        )
