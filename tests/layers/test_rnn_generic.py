"""``RNN(cell)`` and ``StackedRNNCells`` (the ``scan`` primitive): Keras parity with the same weights
(real Keras 3), ONNX Runtime parity (the export's ``Scan``), masks of every shape, gradients by
finite differences, a few training steps, configs and a ``.keras`` file written by Keras."""

import numpy as np
import onnx
import pytest

import irtool
from irtool.ops.scan import Scan

from ..harness import assert_onnx_parity, keras_outputs, keras_parity, require_keras, run_onnx
from ..train.gradcheck import check_gradients

real = require_keras()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RNG = np.random.default_rng(12)
F = 3


def _minimal_cell_class(lib):
    """The Keras guide's ``MinimalRNNCell``, written in ``lib.ops`` and registered with ``lib``."""

    @lib.saving.register_keras_serializable(package="irtool_tests")
    class MinimalRNNCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
            )

        def call(self, inputs, states):
            prev_output = states[0]
            h = lib.ops.matmul(inputs, self.kernel)
            output = lib.ops.tanh(h + lib.ops.matmul(prev_output, self.recurrent_kernel))
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell


MINIMAL = {lib: _minimal_cell_class(lib) for lib in (irtool, real)}

CASES = {
    "lstm_cell_seq_state": lambda lib: lib.layers.RNN(lib.layers.LSTMCell(4), return_sequences=True, return_state=True),
    "simple_cell_backwards": lambda lib: lib.layers.RNN(lib.layers.SimpleRNNCell(3), go_backwards=True),
    "gru_cell_state_back_seq": lambda lib: lib.layers.RNN(
        lib.layers.GRUCell(3, reset_after=False), return_state=True, go_backwards=True, return_sequences=True
    ),
    "stacked_state": lambda lib: lib.layers.RNN(
        [lib.layers.SimpleRNNCell(3), lib.layers.LSTMCell(2)], return_state=True
    ),
    "minimal_cell_seq": lambda lib: lib.layers.RNN(MINIMAL[lib](4), return_sequences=True),
    "stacked_minimal_gru_zero_output": lambda lib: lib.layers.RNN(
        lib.layers.StackedRNNCells([MINIMAL[lib](3), lib.layers.GRUCell(2)]),
        return_sequences=True,
        zero_output_for_mask=True,
    ),
}

MASKS = {
    "left_padded": [[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
    "holes": [[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 1, 1]],
    "all_masked_row": [[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 1, 0]],
    "length_1": [[1], [0], [1]],
}


def _model(lib, case, tokens=False):
    if tokens:
        x = lib.Input((None,), dtype="int32")
        h = lib.layers.Embedding(12, F, mask_zero=True)(x)
    else:
        x = h = lib.Input((None, F))
    return lib.Model(x, CASES[case](lib)(h))


def _keras_flat(theirs, feeds) -> list:
    """Keras' outputs flattened (nested states too: ``out, h1, [h2, c2]``)."""
    return [real.ops.convert_to_numpy(t) for t in real.tree.flatten(theirs(feeds, training=False))]


def _compare_onnx(theirs, proto, feeds):
    got = run_onnx(proto, {proto.graph.input[0].name: feeds})
    want = _keras_flat(theirs, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_keras_and_onnx_at_several_lengths(case):
    batches = [RNG.standard_normal((batch, time, F)).astype("float32") for time, batch in ((1, 2), (4, 3), (7, 1))]
    ours, theirs = keras_parity(
        lambda lib: _model(lib, case),
        batches[0],
        extra_inputs=batches[1:],
        atol=2e-5,
        direct_call=True,
        weight_paths=True,
        weight_shapes=True,
    )
    proto = irtool.onnx.to_onnx(ours)
    onnx.checker.check_model(proto, full_check=True)
    assert "Scan" in [n.op_type for n in proto.graph.node]
    for x in batches:
        _compare_onnx(theirs, proto, x)


@pytest.mark.parametrize("case", sorted(CASES))
def test_embedding_masks_match_keras_in_numpy_and_onnx(case):
    batches = [RNG.integers(1, 12, np.shape(m)).astype("int32") * np.asarray(m, "int32") for m in MASKS.values()]
    ours, theirs = keras_parity(
        lambda lib: _model(lib, case, tokens=True), batches[0], extra_inputs=batches[1:], atol=2e-5, direct_call=True
    )
    proto = irtool.onnx.to_onnx(ours)
    for ids in batches:
        _compare_onnx(theirs, proto, ids)


def test_explicit_masks_and_initial_states_match_keras():
    def build(lib):
        x, m = lib.Input((None, F)), lib.Input((None,), dtype="bool")
        h, c = lib.Input((4,)), lib.Input((4,))
        out = lib.layers.RNN(lib.layers.LSTMCell(4), return_sequences=True, return_state=True, go_backwards=True)(
            x, initial_state=[h, c], mask=m
        )
        return lib.Model([x, m, h, c], out)

    feeds = []
    for mask in MASKS.values():
        mask = np.asarray(mask, bool)
        states = [RNG.standard_normal((3, 4)).astype("float32") for _ in range(2)]
        feeds.append([RNG.standard_normal((*mask.shape, F)).astype("float32"), mask, *states])
    ours, theirs = keras_parity(build, feeds[0], extra_inputs=feeds[1:], atol=2e-5, direct_call=True)
    proto = irtool.onnx.to_onnx(ours)
    for batch in feeds:
        got = run_onnx(proto, {i.name: v for i, v in zip(proto.graph.input, batch)})
        for g, w in zip(got, keras_outputs(theirs, batch)):
            np.testing.assert_allclose(g, w, atol=2e-5, rtol=1e-5)


def test_rnn_of_lstm_cell_equals_lstm():
    x = irtool.Input((None, F))
    generic = irtool.Model(x, irtool.layers.RNN(irtool.layers.LSTMCell(4), return_sequences=True, return_state=True)(x))
    y = irtool.Input((None, F))
    fused = irtool.Model(y, irtool.layers.LSTM(4, return_sequences=True, return_state=True)(y))
    fused.set_weights(generic.get_weights())
    data = RNG.standard_normal((2, 6, F)).astype("float32")
    for a, b in zip(generic.predict(data, verbose=0), fused.predict(data, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert any(isinstance(generic.graph.prim(op), Scan) for op in generic.graph.ops)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_gradients_by_finite_differences(go_backwards, zero_output_for_mask):
    x = RNG.standard_normal((3, 4, 2))
    mask = np.asarray([[1, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]], bool)
    h0 = RNG.standard_normal((3, 2)) * 0.5

    def build(x, m, h):
        cells = [irtool.layers.SimpleRNNCell(2, dtype="float64"), irtool.layers.LSTMCell(2, dtype="float64")]
        layer = irtool.layers.RNN(
            cells,
            return_sequences=True,
            return_state=True,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            dtype="float64",
        )
        out, s1, (s2, c2) = layer(x, mask=m, initial_state=[h, [h, h]])
        return [out, s1, s2, c2]

    check_gradients(build, [x, mask, h0], atol=1e-6, rtol=1e-5, weight_samples=4)


def test_training_lowers_the_loss():
    irtool.utils.set_random_seed(3)
    x = irtool.Input((None, F))
    y = irtool.layers.Dense(1)(irtool.layers.RNN(MINIMAL[irtool](6))(x))
    model = irtool.Model(x, y)
    model.compile(optimizer=irtool.optimizers.Adam(0.05), loss="mse")
    data = RNG.standard_normal((16, 5, F)).astype("float32")
    target = data.sum(axis=(1, 2))[:, None] * 0.2
    before = model.evaluate(data, target, verbose=0)
    model.fit(data, target, epochs=15, batch_size=8, verbose=0)
    after = model.evaluate(data, target, verbose=0)
    assert after < 0.5 * before
    # The export reads the trained weights (Variable operands of the scan, not frozen constants).
    assert_onnx_parity(model, data)


def test_config_round_trip_and_keras_config():
    ours, theirs = keras_parity(
        lambda lib: _model(lib, "stacked_minimal_gru_zero_output"),
        RNG.standard_normal((2, 3, F)).astype("float32"),
        direct_call=True,
        configs=lambda layer: isinstance(layer, irtool.layers.RNN),
        config_nested="skip",
    )
    layer = ours.layers[-1]
    config = layer.get_config()
    assert config["cell"]["class_name"] == "StackedRNNCells"
    cells = config["cell"]["config"]["cells"]
    assert [(c["class_name"], c["registered_name"]) for c in cells] == [
        ("MinimalRNNCell", "irtool_tests>MinimalRNNCell"),
        ("GRUCell", None),
    ]
    clone = irtool.layers.RNN.from_config(config)
    clone.build((None, None, F))
    assert clone.get_config() == config
    rebuilt = irtool.Model.from_config(ours.get_config())
    rebuilt.set_weights(ours.get_weights())
    data = RNG.standard_normal((2, 5, F)).astype("float32")
    np.testing.assert_allclose(rebuilt.predict(data, verbose=0), ours.predict(data, verbose=0), atol=1e-6)


def test_loads_a_keras_file_written_by_keras(tmp_path):
    real.utils.set_random_seed(1)
    x = real.Input((None, F))
    h = real.layers.RNN([real.layers.LSTMCell(3), MINIMAL[real](2)], return_sequences=True)(x)
    theirs = real.Model(x, real.layers.RNN(real.layers.GRUCell(2), go_backwards=True)(h))
    path = tmp_path / "rnn.keras"
    theirs.save(path)
    ours = irtool.saving.load_model(path)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    data = RNG.standard_normal((2, 4, F)).astype("float32")
    np.testing.assert_allclose(ours.predict(data, verbose=0), keras_outputs(theirs, data)[0], atol=2e-5)


def test_refusals_say_what_was_expected():
    with pytest.raises(ValueError, match="stateful=True"):
        irtool.layers.RNN(irtool.layers.LSTMCell(2), stateful=True)
    with pytest.raises(ValueError, match="state_size"):
        irtool.layers.RNN(irtool.layers.Dense(2))
    layer = irtool.layers.RNN(irtool.layers.LSTMCell(2))
    with pytest.raises(ValueError, match="expects 2 initial states"):
        x, h = irtool.Input((None, F)), irtool.Input((2,))
        layer(x, initial_state=[h])


BIDIRECTIONAL = {
    "minimal_concat_seq": lambda lib: lib.layers.Bidirectional(lib.layers.RNN(MINIMAL[lib](3), return_sequences=True)),
    "lstm_cell_sum_state": lambda lib: lib.layers.Bidirectional(
        lib.layers.RNN(lib.layers.LSTMCell(2), return_state=True), merge_mode="sum"
    ),
    "stacked_none_seq": lambda lib: lib.layers.Bidirectional(
        lib.layers.RNN([lib.layers.GRUCell(2), lib.layers.SimpleRNNCell(3)], return_sequences=True), merge_mode=None
    ),
}


@pytest.mark.parametrize("case", sorted(BIDIRECTIONAL))
def test_bidirectional_wraps_generic_rnns(case):
    def build(lib):
        x = lib.Input((None,), dtype="int32")
        return lib.Model(x, BIDIRECTIONAL[case](lib)(lib.layers.Embedding(12, F, mask_zero=True)(x)))

    batches = [RNG.integers(1, 12, np.shape(m)).astype("int32") * np.asarray(m, "int32") for m in MASKS.values()]
    ours, theirs = keras_parity(
        build,
        batches[0],
        extra_inputs=batches[1:],
        atol=2e-5,
        direct_call=True,
        weight_paths=True,
        configs=lambda layer: isinstance(layer, irtool.layers.Bidirectional),
    )
    layer = ours.layers[-1]
    assert isinstance(layer, irtool.layers.Wrapper) and layer.layer is layer.forward_layer
    proto = irtool.onnx.to_onnx(ours)
    for ids in batches:
        _compare_onnx(theirs, proto, ids)
    rebuilt = irtool.Model.from_config(ours.get_config())
    rebuilt.set_weights(ours.get_weights())
    np.testing.assert_allclose(rebuilt.predict(batches[1], verbose=0), ours.predict(batches[1], verbose=0))


def test_cell_dropout_that_training_would_not_apply_is_said():
    inputs = irtool.Input((5, 3))
    layer = irtool.layers.RNN(irtool.layers.LSTMCell(4, dropout=0.3), name="rnn")
    with pytest.warns(UserWarning, match=r"Layer 'rnn': the dropout/recurrent_dropout of cell\(s\) \['lstm_cell'\]"):
        layer(inputs)
