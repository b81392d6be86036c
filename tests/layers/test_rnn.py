"""SimpleRNN, LSTM, GRU and Bidirectional: weights, outputs vs the reference recurrence, masks,
initial states, configs, errors and ONNX parity with a dynamic time axis."""

import numpy as np
import pytest

import irtool
import irtool as keras
from irtool import layers, ops

from ..conftest import assert_onnx_parity, run_onnx
from ..harness import all_nodes, run_layer_test
from ..ops import _rnn_reference as ref

RNG = np.random.default_rng(21)
F = 3
KIND = {layers.SimpleRNN: "simple_rnn", layers.LSTM: "lstm", layers.GRU: "gru"}


class MakeMask(layers.Layer):
    """Passes its input through with the mask ``sum(x, -1) != 0`` (zero rows are padding)."""

    supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, previous_mask):
        return ops.not_equal(ops.sum(inputs, axis=-1), 0.0)


def _padded(batch, time):
    x = RNG.standard_normal((batch, time, F)).astype("float32")
    mask = ref.right_padded_mask(batch, time, RNG)
    return x * mask[..., None], mask


def _weights(layer):
    return [w.numpy() for w in layer.weights] + ([None] if not layer.cell.use_bias else [])


def _outputs(got):
    return got if isinstance(got, list) else [got]


def _check(model, reference, masked=False, sizes=((2, 3), (5, 4), (7, 2)), extra=()):
    """NumPy vs reference and one export vs both, at several (time, batch) sizes."""
    proto = keras.onnx.to_onnx(model)
    for time, batch in sizes:
        x, mask = _padded(batch, time) if masked else (RNG.standard_normal((batch, time, F)).astype("float32"), None)
        feeds = [x] + [e[:batch] for e in extra]
        want = reference(x, mask)
        got = _outputs(model.predict(feeds if extra else x, verbose=0))
        onnx_got = run_onnx(proto, {i.name: f for i, f in zip(proto.graph.input, feeds)})
        assert len(got) == len(want) == len(onnx_got)
        for g, o, w in zip(got, onnx_got, want):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)
            np.testing.assert_allclose(o, w, atol=1e-4, rtol=1e-4)
    return proto


def test_weights_paths_shapes_and_initial_values():
    x = keras.Input((None, F))
    lstm, gru, gru_before, simple = layers.LSTM(4), layers.GRU(2), layers.GRU(2, reset_after=False), layers.SimpleRNN(5)
    bi = layers.Bidirectional(layers.LSTM(2))
    model = keras.Model(x, [lstm(x), gru(x), gru_before(x), simple(x), bi(x)])
    paths = {w.path: w.shape for w in model.weights}
    assert list(paths.items())[:3] == [
        ("lstm/lstm_cell/kernel", (F, 16)),
        ("lstm/lstm_cell/recurrent_kernel", (4, 16)),
        ("lstm/lstm_cell/bias", (16,)),
    ]
    assert paths["gru/gru_cell/bias"] == (2, 6) and paths["gru_1/gru_cell/bias"] == (6,)
    assert paths["simple_rnn/simple_rnn_cell/recurrent_kernel"] == (5, 5)
    assert [w.path for w in bi.weights] == [
        f"bidirectional/{d}_lstm_1/lstm_cell/{n}"
        for d in ("forward", "backward")
        for n in ("kernel", "recurrent_kernel", "bias")
    ]
    assert [layer.name for layer in model.layers][1:] == ["lstm", "gru", "gru_1", "simple_rnn", "bidirectional"]
    assert model.count_params() == 128 + 42 + 36 + 45 + 96
    bias = lstm.cell.bias.numpy()
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])  # unit_forget_bias
    rec = lstm.cell.recurrent_kernel.numpy()
    np.testing.assert_allclose(rec @ rec.T, np.eye(4), atol=1e-5)  # orthogonal initializer
    assert layers.LSTM(3, unit_forget_bias=False, bias_initializer="ones")(np.zeros((1, 2, F), "float32")).shape == (
        1,
        3,
    )


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_outputs_match_reference_and_onnx(cls, return_sequences, go_backwards):
    kind = KIND[cls]
    x = keras.Input((None, F))
    layer = cls(4, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    model = keras.Model(x, layer(MakeMask()(x)))
    for w in layer.weights:
        w.assign(RNG.standard_normal(w.shape).astype("float32") * 0.5)
    n = ref.N_STATES[kind]
    assert len(model.outputs) == 1 + n
    assert model.outputs[0].shape == ((None, None, 4) if return_sequences else (None, 4))
    assert (model.outputs[0]._keras_mask is not None) == return_sequences

    def reference(xv, mask):
        return ref.layer(kind, xv, _weights(layer), None, mask, return_sequences, go_backwards)

    proto = _check(model, reference, masked=True)
    assert [node.op_type for node in all_nodes(proto)].count({"simple_rnn": "RNN"}.get(kind, kind.upper())) == 1


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
def test_initial_states_as_inputs_and_options(cls):
    kind = KIND[cls]
    n = ref.N_STATES[kind]
    x = keras.Input((None, F))
    states = [keras.Input((4,)) for _ in range(n)]
    options = dict(use_bias=False) if cls is layers.LSTM else dict(reset_after=False, activation="relu")
    layer = cls(4, return_sequences=True, **options)
    model = keras.Model([x, *states], layer(x, initial_state=states))
    init = [RNG.standard_normal((4, 4)).astype("float32") for _ in range(n)]
    cell = {"reset_after": False, "act": "relu"} if cls is layers.GRU else {}

    def reference(xv, mask):
        return ref.layer(kind, xv, _weights(layer), [s[: len(xv)] for s in init], None, True, **cell)[:1]

    _check(model, reference, extra=init)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.LSTM, layers.GRU])
def test_bidirectional_merge_modes_one_node(cls, merge_mode):
    kind = KIND[cls]
    x = keras.Input((None, F))
    bi = layers.Bidirectional(cls(3, return_sequences=True, return_state=True), merge_mode=merge_mode)
    outputs = bi(MakeMask()(x))
    model = keras.Model(x, outputs)
    n = ref.N_STATES[kind]
    assert len(outputs) == (2 if merge_mode is None else 1) + 2 * n
    assert outputs[0].shape == (None, None, 6 if merge_mode == "concat" else 3)
    assert outputs[0]._keras_mask is not None and outputs[-1]._keras_mask is None

    def reference(xv, mask):
        weights = [w.numpy() for w in bi.weights]
        half = len(weights) // 2
        return ref.bidirectional(kind, xv, weights[:half], weights[half:], None, mask, True, merge_mode)

    proto = _check(model, reference, masked=True)
    (node,) = [nd for nd in all_nodes(proto) if nd.op_type in ("RNN", "LSTM", "GRU")]
    assert [a.s for a in node.attribute if a.name == "direction"] == [b"bidirectional"]


def test_bidirectional_with_a_different_backward_layer_runs_two_ops():
    x = keras.Input((None, F))
    backward = layers.GRU(3, go_backwards=True, return_sequences=True, name="back")
    bi = layers.Bidirectional(layers.LSTM(3, return_sequences=True), backward_layer=backward, merge_mode="concat")
    model = keras.Model(x, bi(MakeMask()(x)))
    assert [w.path for w in bi.weights][3:4] == ["bidirectional/back/gru_cell/kernel"]

    def reference(xv, mask):
        w = [v.numpy() for v in bi.weights]
        y = ref.run("lstm", xv, w[:3], mask=mask, zero_output_for_mask=True)[0]
        y_rev = ref.run("gru", xv, w[3:], mask=mask, go_backwards=True, zero_output_for_mask=True)[0][:, ::-1]
        return [np.concatenate([y, y_rev], -1)]

    proto = _check(model, reference, masked=True)
    assert sorted(n.op_type for n in all_nodes(proto) if n.op_type in ("LSTM", "GRU")) == ["GRU", "LSTM"]
    # Same kind and settings but given explicitly: fused again.
    twin = layers.Bidirectional(layers.GRU(2), backward_layer=layers.GRU(2, go_backwards=True))
    proto = keras.onnx.to_onnx(keras.Model(x, twin(x)))
    assert [n.op_type for n in proto.graph.node].count("GRU") == 1


def test_stacked_lstms_on_embedding_mask_and_dynamic_shapes():
    tokens = keras.Input((None,), dtype="int32")
    h = layers.Embedding(20, 5, mask_zero=True)(tokens)
    h = layers.Bidirectional(layers.LSTM(4, return_sequences=True))(h)
    h = layers.GRU(3)(h)
    model = keras.Model(tokens, layers.Dense(2)(h))
    for time, batch in ((3, 2), (6, 3), (9, 1)):
        ids = RNG.integers(1, 20, (batch, time)).astype("int32")
        ids[0, time - 1 :] = 0
        assert_onnx_parity(model, ids, atol=1e-4, rtol=1e-4)


def test_layer_errors_and_config_round_trip():
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        layers.LSTM(2)(keras.Input((F,)))
    with pytest.raises(ValueError, match="stateful=True"):
        layers.GRU(2, stateful=True)
    with pytest.raises(ValueError, match="positive integer"):
        layers.SimpleRNN(0)
    with pytest.raises(ValueError, match="Invalid merge mode"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="different `go_backwards`"):
        layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2))
    with pytest.raises(ValueError, match='attribute "return_sequences"'):
        layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2, go_backwards=True, return_sequences=True))
    with pytest.raises(ValueError, match="Layer` instance"):
        layers.Bidirectional("lstm")
    lstm = layers.LSTM(3, activation="relu", return_sequences=True, dropout=0.2, name="enc")
    config = lstm.get_config()
    assert config["units"] == 3 and config["activation"] == "relu" and config["return_sequences"] is True
    assert config["recurrent_initializer"]["class_name"] == "Orthogonal" and config["unit_forget_bias"] is True
    clone = layers.LSTM.from_config(config)
    assert clone.get_config() == config and clone.units == 3 and clone.dropout == 0.2
    gru = layers.GRU.from_config(layers.GRU(2, reset_after=False).get_config())
    assert gru.reset_after is False and "recurrent_activation" not in layers.SimpleRNN(2).get_config()
    bi = layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode="ave")
    config = bi.get_config()
    assert config["layer"]["config"]["name"] == "forward_gru_1" and config["backward_layer"]["config"]["go_backwards"]
    again = layers.Bidirectional.from_config(config)
    assert again.merge_mode == "ave" and again.backward_layer.name == "backward_gru_1"


def test_cells_step_like_the_layer_and_eager_layers():
    x = RNG.standard_normal((2, 4, F)).astype("float32")
    for cls in (layers.SimpleRNN, layers.LSTM, layers.GRU):
        layer = cls(3, return_state=True)
        out, *states = layer(x)
        cell = layer.cell
        s = cell.get_initial_state(2)
        for t in range(4):
            h, s = cell(x[:, t], s)
        np.testing.assert_allclose(h, out, atol=1e-5)
        np.testing.assert_allclose(s[0], states[0], atol=1e-5)
    bi = layers.Bidirectional(layers.SimpleRNN(2), merge_mode="sum", weights=None)
    assert bi(x).shape == (2, 2)
    pair = layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), merge_mode=None)(x)
    assert [p.shape for p in pair] == [(2, 4, 2), (2, 4, 2)]


def test_recurrent_layers_between_convolutions():
    x = keras.Input((None, 5))
    h = layers.Conv1D(4, 3, padding="same")(x)
    h = layers.Bidirectional(layers.LSTM(3, return_sequences=True))(h)
    h = layers.Conv1D(2, 2)(h)
    model = keras.Model(x, layers.GRU(2)(h))
    for time in (3, 6, 8):
        assert_onnx_parity(model, RNG.standard_normal((2, time, 5)).astype("float32"), atol=1e-4, rtol=1e-4)


HARNESS_CASES = [
    ("SimpleRNN", {"units": 3}, (4, 2)),
    ("GRU", {"units": 3, "return_sequences": True}, (4, 2)),
    ("LSTM", {"units": 2, "return_state": True}, (3, 2)),
]


@pytest.mark.parametrize("name, kwargs, shape", HARNESS_CASES, ids=[c[0] for c in HARNESS_CASES])
def test_layer_harness(name, kwargs, shape):
    """Shapes, configs, .keras file, ONNX, gradients and (where installed) Keras: tests/harness.py."""
    run_layer_test(getattr(irtool.layers, name), kwargs, shape)
