"""Bidirectional: a forward and a backward copy of an RNN layer, merged (Keras 3 semantics).

A ``Wrapper`` whose wrapped ``layer`` is the forward copy (what Keras' config stores under
``layer``; the weights walk stores it once, at ``forward_layer``). When both directions are the
same kind of fused layer (``SimpleRNN``/``LSTM``/``GRU``) with the same settings (the usual case,
and always when ``backward_layer`` is not given), they run as one fused primitive that lowers to a
single ONNX node with ``direction="bidirectional"``. Otherwise (a generic ``RNN(cell)``, a
``ConvLSTM``, or two different directions) each direction runs on its own and the outputs are
merged with ops.
"""

from __future__ import annotations

from irtool import ops
from irtool.ir import tree
from irtool.layers.layer import Layer, dtype_from_config
from irtool.layers.recurrent import RNN
from irtool.layers.rnn import _RNN, weight_scope
from irtool.layers.wrapper import Wrapper
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _serialize(layer) -> dict:

    return serialize_keras_object(layer)


def _deserialize(config):
    if isinstance(config, Layer):
        return config

    return deserialize_keras_object(config, kind="layer")


def _copy(layer, **changes):
    config = layer.get_config()
    config.update(changes)
    return type(layer).from_config(config)


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def _n_states(layer) -> int:
    return layer.cell.n_states if isinstance(layer, _RNN) else layer.n_states


class Bidirectional(Wrapper):
    """Bidirectional wrapper for RNNs: ``Bidirectional(LSTM(4), merge_mode="concat")``.

    Weights: the forward layer's (``bidirectional/forward_lstm/lstm_cell/kernel``...) then the
    backward layer's. Backward outputs are re-aligned with the input's time order before merging.
    Returns the merged output (a pair with ``merge_mode=None``), followed by the forward then the
    backward states with ``return_state``.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Please initialize `Bidirectional` layer with a `keras.layers.Layer` instance. Received: {layer}"
            )
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` need to be a `keras.layers.Layer` instance. Received: {backward_layer}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                '{"sum", "mul", "ave", "concat", None}'
            )
        for candidate in (layer, backward_layer):
            if candidate is not None and not isinstance(candidate, (_RNN, RNN)):
                raise ValueError(
                    "irtool's Bidirectional wraps recurrent layers (SimpleRNN, LSTM, GRU, RNN, ConvLSTM). "
                    f"Received: {type(candidate).__name__}"
                )
        forward_layer = _copy(layer, name=f"forward_{_strip(layer.name, 'forward_')}")
        super().__init__(forward_layer, **kwargs)
        self.forward_layer = forward_layer
        if backward_layer is None:
            self.backward_layer = _copy(layer, name=f"backward_{_strip(layer.name, 'backward_')}", go_backwards=True)
        else:
            self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` value. Received: "
                f"forward_layer.go_backwards {self.forward_layer.go_backwards}, "
                f"backward_layer.go_backwards={self.backward_layer.go_backwards}"
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(self.forward_layer, attr) != getattr(self.backward_layer, attr):
                raise ValueError(
                    f'Forward layer and backward layer are expected to have the same value for attribute "{attr}", '
                    f'got "{getattr(self.forward_layer, attr)}" for forward layer and '
                    f'"{getattr(self.backward_layer, attr)}" for backward layer'
                )
        # Keras forces zeros at masked steps when returning sequences.
        for direction in (self.forward_layer, self.backward_layer):
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.stateful = False
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True
        self.input_spec = layer.input_spec
        self._initial_weights = weights

    def build(self, sequences_shape, initial_state_shape=None):
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                with weight_scope(self, direction):
                    direction.build(sequences_shape)
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None
        self.built = True

    def _fusable(self) -> bool:
        """One fused op when both directions are the same kind of layer with the same settings."""
        f, b = self.forward_layer, self.backward_layer
        if not isinstance(f, _RNN) or type(f) is not type(b) or f.go_backwards or not b.go_backwards:
            return False
        fc, bc = f.cell, b.cell
        return (
            fc.units == bc.units
            and fc.use_bias == bc.use_bias
            and getattr(fc, "reset_after", None) == getattr(bc, "reset_after", None)
            and fc.activation is bc.activation
            and getattr(fc, "recurrent_activation", None) is getattr(bc, "recurrent_activation", None)
            and (getattr(fc, "dropout", 0.0), getattr(fc, "recurrent_dropout", 0.0))
            == (getattr(bc, "dropout", 0.0), getattr(bc, "recurrent_dropout", 0.0))
        )

    def call(self, sequences, initial_state=None, mask=None, training=None):
        f, b = self.forward_layer, self.backward_layer
        forward_state = backward_state = None
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)):
                initial_state = [initial_state]
            half = len(initial_state) // 2
            forward_state, backward_state = list(initial_state[:half]), list(initial_state[half:])
        if self._fusable():
            bc = b.cell
            return f._fused(
                sequences,
                None if initial_state is None else list(initial_state),
                mask,
                go_backwards=False,
                backward=(bc.kernel, bc.recurrent_kernel, bc.bias),
                merge_mode=self.merge_mode,
                training=training,
            )
        # Different directions: run each on its own (the backward output re-aligned) and merge.
        y = self._direction(f, sequences, forward_state, mask, training)
        y_rev = self._direction(b, sequences, backward_state, mask, training)
        if self.return_sequences:
            # The backward layer's outputs are in processing order: back to the input's time order.
            if self.return_state:
                y_rev = [y_rev[0][:, ::-1], *y_rev[1:]]
            else:
                y_rev = y_rev[:, ::-1]
        states = []
        if self.return_state:
            states = tree.flatten(y[1:]) + tree.flatten(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.merge_mode == "concat":
            output = [ops.concatenate([y, y_rev], axis=-1)]
        elif self.merge_mode == "sum":
            output = [y + y_rev]
        elif self.merge_mode == "ave":
            output = [(y + y_rev) / 2]
        elif self.merge_mode == "mul":
            output = [y * y_rev]
        else:
            output = [y, y_rev]
        if self.return_state or self.merge_mode is None:
            return output + states
        return output[0]

    @staticmethod
    def _direction(layer, sequences, initial_state, mask, training):
        if isinstance(layer, _RNN):
            return layer._fused(sequences, initial_state, mask, training=training)
        return layer.call(sequences, initial_state=initial_state, mask=mask, training=training)

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if self.return_sequences:
            output_mask = [mask, mask] if self.merge_mode is None else [mask]
        else:
            output_mask = [None, None] if self.merge_mode is None else [None]
        if self.return_state:
            output_mask += [None] * (2 * _n_states(self.forward_layer))
        return output_mask if len(output_mask) > 1 else output_mask[0]

    def get_config(self):
        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = _serialize(self.forward_layer)
        config["backward_layer"] = _serialize(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config = dtype_from_config(config)
        layer = _deserialize(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        return cls(layer, backward_layer=_deserialize(backward) if backward is not None else None, **config)
