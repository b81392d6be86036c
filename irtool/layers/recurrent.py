"""Keras' generic recurrent layer ``RNN(cell)`` and ``StackedRNNCells``.

A **cell** is any layer with Keras' cell protocol: ``state_size`` (an int, a shape tuple, or a list
of those; a ``StackedRNNCells`` nests one list per cell), optionally ``output_size``, and
``call(inputs, states, training=None) -> (output, new_states)`` for one time step. ``RNN`` traces
that step once into a graph and runs it over time with the ``scan`` primitive
(``irtool.ops.scan``), so any cell written in ``irtool.ops`` (the built-in ``LSTMCell``, or a
user's ``MinimalRNNCell``) trains, exports (an ONNX ``Scan``) and handles masks the same way.

Built-in cells go through the same generic path rather than the fused ``LSTM`` primitive: one
code path for every cell, with numbers identical to ``LSTM`` (the cell's step is the same math,
checked by the tests); the fused layers remain the faster choice for plain ``LSTM``/``GRU``.
"""

from __future__ import annotations

import warnings

import numpy as np

from irtool import ops
from irtool.ir import tree
from irtool.layers.layer import Layer, dtype_from_config
from irtool.layers.rnn import weight_scope
from irtool.ops import scan
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object


def _is_shape(size) -> bool:
    return isinstance(size, tuple) and all(isinstance(d, int) or d is None for d in size)


def _state_layout(state_size) -> list:
    """Per-sample state shapes nested like the states Keras hands the cell: one entry per item of
    ``state_size`` (an int or a shape is one tensor, a list is a list of tensors)."""
    if isinstance(state_size, int) or _is_shape(state_size):
        state_size = [state_size]
    layout = []
    for size in state_size:
        if isinstance(size, int):
            layout.append((size,))
        elif _is_shape(size):
            layout.append(tuple(size))
        elif isinstance(size, (list, tuple)):
            layout.append(_state_layout(size))
        else:
            raise ValueError(
                "state_size must be an integer, or a list/tuple of integers (one for each state tensor). "
                f"Received: state_size={size}"
            )
    return layout


def _leaves(layout) -> list:
    """The shapes of a layout, flat (a shape tuple is a leaf, not a nesting)."""
    out = []
    for item in layout:
        out.extend(_leaves(item) if isinstance(item, list) else [item])
    return out


def _pack(layout, flat: list) -> list:
    it = iter(flat)

    def pack(items):
        return [pack(item) if isinstance(item, list) else next(it) for item in items]

    return pack(layout)


def _check_cell(cell, what: str) -> None:
    if "call" not in dir(cell):
        raise ValueError(f"{what} should have a `call` method. Received: cell={cell}")
    if "state_size" not in dir(cell):
        raise ValueError(
            f"{what} should have a `state_size` attribute (single integer or list of integers, one integer per "
            f"RNN state). Received: cell={cell}"
        )


class StackedRNNCells(Layer):
    """Wrapper allowing a stack of RNN cells to behave as a single cell (Keras 3 semantics).

    ``RNN(StackedRNNCells([LSTMCell(8), SimpleRNNCell(4)]))``: each cell's output is the next
    one's input; ``state_size`` lists the cells' state sizes in order, and the states returned
    with ``return_state`` are nested the same way (``h1``, ``[h2, c2]``). Weights are named
    ``rnn/stacked_rnn_cells/lstm_cell/kernel``, as in Keras.
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        for cell in cells:
            if "call" not in dir(cell):
                raise ValueError(f"All cells must have a `call` method. Received cell without a `call` method: {cell}")
            if "state_size" not in dir(cell):
                raise ValueError(
                    f"All cells must have a `state_size` attribute. Received cell without a `state_size`: {cell}"
                )
        self.cells = list(cells)

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        last = self.cells[-1]
        if getattr(last, "output_size", None) is not None:
            return last.output_size
        if isinstance(last.state_size, (list, tuple)) and not _is_shape(last.state_size):
            return last.state_size[0]
        return last.state_size

    def build(self, input_shape):
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                with weight_scope(self, cell):
                    cell.build(input_shape)
                cell.built = True
            output_dim = getattr(cell, "output_size", None)
            if output_dim is None:
                size = cell.state_size
                output_dim = size[0] if isinstance(size, (list, tuple)) and not _is_shape(size) else size
            input_shape = (input_shape[0], *(output_dim if isinstance(output_dim, tuple) else (output_dim,)))
        self.built = True

    def call(self, inputs, states, training=False):
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            is_list = isinstance(cell_states, (list, tuple))
            cell_states = list(cell_states) if is_list else [cell_states]
            inputs, cell_states = cell.call(inputs, cell_states, **scan.step_kwargs(cell.call, training))
            if not isinstance(cell_states, (list, tuple)):
                cell_states = [cell_states]
            new_states.append(list(cell_states) if is_list else cell_states[0])
        return inputs, new_states

    def get_config(self):
        config = super().get_config()
        config["cells"] = [serialize_keras_object(cell) for cell in self.cells]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dtype_from_config(dict(config))
        cells = [_unbuilt_cell(c, custom_objects) for c in config.pop("cells")]
        return cls(cells, **config)


class RNN(Layer):
    """Base class for recurrent layers: runs ``cell`` over the time axis (Keras 3 semantics).

    >>> cell = keras.layers.LSTMCell(4)
    >>> y = keras.layers.RNN(cell, return_sequences=True)(keras.Input((None, 3)))

    ``cell`` may be a list of cells (stacked). Inputs are ``(batch, time, ...)``; the time axis may
    be unknown. Returns ``output`` (``(batch, time, out)`` with ``return_sequences`` else the last
    step's), followed by the final states with ``return_state``. Masks (``mask=`` or one attached
    to the input) keep the previous states and output at masked steps, as Keras does;
    ``go_backwards`` processes the sequence in reverse (outputs in processing order).
    ``stateful=True`` is not supported; ``unroll`` is accepted and has no effect (the step graph is
    the same either way). Initial states are zeros unless ``initial_state`` is passed.
    """

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        **kwargs,
    ):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        _check_cell(cell, "Argument `cell`")
        if stateful:
            raise ValueError(f"{type(self).__name__}(stateful=True) is not supported by irtool.")
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = False
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        self.supports_masking = True
        layout = _state_layout(cell.state_size)
        self.state_size = [item if isinstance(item, list) else _size(item) for item in layout]

    @property
    def layout(self) -> list:
        """The cell's per-sample state shapes, nested as its states (read when needed: a cell may
        know them only once built, as ``ConvLSTMCell``)."""
        return _state_layout(self.cell.state_size)

    @property
    def n_states(self) -> int:
        """How many state tensors the cell carries (nested states counted one by one)."""
        return len(_leaves(self.layout))

    def build(self, sequences_shape, initial_state_shape=None):
        if isinstance(self.cell, Layer) and not self.cell.built:
            step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
            with weight_scope(self, self.cell):
                self.cell.build(step_shape)
            self.cell.built = True
        self.built = True

    def _check_zero_initial_state(self):
        """A cell's own ``get_initial_state`` must give zeros: the scan starts from zeros."""
        get_initial_state = getattr(self.cell, "get_initial_state", None)
        if get_initial_state is None:
            return
        values = tree.flatten(get_initial_state(batch_size=1))
        if any(np.any(np.asarray(v) != 0) for v in values):
            raise ValueError(
                f"Layer '{self.name}': the cell's `get_initial_state` returns non-zero states, which irtool's RNN "
                "does not run; pass them as `initial_state=` instead."
            )

    def call(self, sequences, initial_state=None, mask=None, training=None):
        shapes = _leaves(self.layout)
        flat_initial = None
        if initial_state is not None:
            flat_initial = tree.flatten(initial_state)
            if len(flat_initial) != len(shapes):
                raise ValueError(
                    f"Layer '{self.name}' expects {len(shapes)} initial states (state_size={self.cell.state_size}), "
                    f"but it received {len(flat_initial)} initial state tensors."
                )
        else:
            self._check_zero_initial_state()
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if mask is not None and mask.dtype != "bool":
            mask = ops.cast(mask, "bool")
        cell, layout = self.cell, self.layout
        self._warn_cell_dropout()
        kwargs = scan.step_kwargs(cell.call, training)

        def step(inputs, flat_states):
            output, new_states = cell.call(inputs, _pack(layout, flat_states), **kwargs)
            return output, new_states

        last, outputs, states = scan.rnn(
            step,
            sequences,
            flat_initial,
            shapes,
            go_backwards=self.go_backwards,
            mask=mask,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        output = outputs if self.return_sequences else last
        if self.return_state:
            return [output, *_pack(layout, states)]
        return output

    def _warn_cell_dropout(self):
        """The step graph is traced once, in inference form, and training reuses it: a cell's
        dropout would not act when the model is trained, so say so when the layer is built."""
        cells = getattr(self.cell, "cells", [self.cell])
        dropping = [c.name for c in cells if getattr(c, "dropout", 0) or getattr(c, "recurrent_dropout", 0)]
        if dropping and not getattr(self, "_warned_dropout", False):
            self._warned_dropout = True
            warnings.warn(
                f"Layer '{self.name}': the dropout/recurrent_dropout of cell(s) {dropping} will not be applied if "
                "this RNN(cell) is trained in irtool (its step graph runs in inference form; inference is exact). Use the fused layers "
                "(SimpleRNN, LSTM, GRU take dropout= and recurrent_dropout= and apply them as Keras does) or a "
                "Dropout layer before the RNN.",
                stacklevel=3,
            )

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.n_states
        return output_mask

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
                "cell": serialize_keras_object(self.cell),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dtype_from_config(dict(config))
        cell = config.pop("cell")
        return cls(_unbuilt_cell(cell, custom_objects), **config)


def _unbuilt_cell(config, custom_objects):
    """A cell from its config, left unbuilt (its ``build_config`` dropped) so that the layer that
    holds it builds it and its weights get Keras' paths (``rnn/stacked_rnn_cells/lstm_cell/kernel``)."""
    if isinstance(config, Layer):
        return config
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k != "build_config"}
    return deserialize_keras_object(config, custom_objects=custom_objects, kind="layer")


def _size(shape: tuple):
    return shape[0] if len(shape) == 1 else shape
