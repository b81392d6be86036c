"""TimeDistributed: per-step references, dynamic batch and time in ONNX, masks, training, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import irtool as keras
from irtool import layers
from irtool.train.autodiff import GradientProgram

from ..conftest import assert_onnx_parity
from ..harness import require_keras, run_layer_test
from ..train.test_vjp_norm_rnn import training_gradcheck


def _rand(*shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _dense_model():
    inputs = keras.Input((None, 5))
    td = layers.TimeDistributed(layers.Dense(3, activation="tanh"))
    return keras.Model(inputs, td(inputs)), td


def _conv_model(spatial=(6, 6)):
    inputs = keras.Input((None, *spatial, 3))
    td = layers.TimeDistributed(layers.Conv2D(4, 3, activation="relu"))
    return keras.Model(inputs, td(inputs)), td


def _nested_lstm_model():
    step_in = keras.Input((4,))
    step_out = layers.Dense(2, activation="relu")(layers.Dense(6, activation="tanh")(step_in))
    per_step = keras.Model(step_in, step_out, name="per_step")
    inputs = keras.Input((None, 4))
    lstm = layers.LSTM(3, return_sequences=True)
    return keras.Model(inputs, lstm(layers.TimeDistributed(per_step)(inputs))), per_step, lstm


def _dynamic_dims(value_info) -> list:
    return [d.dim_param for d in value_info.type.tensor_type.shape.dim[:2]]


# -- forward passes against per-step computations -------------------------------------------------------------------
def test_dense_matches_per_step_matmul():
    model, td = _dense_model()
    assert td.output.shape == (None, None, 3)
    x = _rand(2, 7, 5)
    kernel, bias = td.get_weights()
    want = np.stack([np.tanh(x[:, t] @ kernel + bias) for t in range(7)], axis=1)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # Eager calls on arrays take the same path.
    np.testing.assert_allclose(td(x), want, rtol=1e-5, atol=1e-6)


def test_conv2d_on_video_matches_each_frame():
    model, td = _conv_model()
    assert td.output.shape == (None, None, 4, 4, 4)
    x = _rand(2, 3, 6, 6, 3)
    want = np.stack([td.layer(x[:, t]) for t in range(3)], axis=1)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


def test_nested_functional_then_lstm_matches_per_step():
    model, per_step, lstm = _nested_lstm_model()
    x = _rand(3, 5, 4)
    steps = np.stack([per_step.predict(x[:, t], verbose=0) for t in range(5)], axis=1)
    head_in = keras.Input((None, 2))
    want = keras.Model(head_in, lstm(head_in)).predict(steps, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # The wrapper owns no weights of its own: the nested model's, then the LSTM's.
    assert [w.path for w in model.weights[:4]] == [w.path for w in per_step.weights]


def test_static_batch_and_time():
    inputs = keras.Input((4, 5), batch_size=2)
    td = layers.TimeDistributed(layers.Dense(3))
    model = keras.Model(inputs, td(inputs))
    assert model.output.shape == (2, 4, 3)
    x = _rand(2, 4, 5)
    kernel, bias = td.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel + bias, rtol=1e-5, atol=1e-6)
    proto = assert_onnx_parity(model, x)
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [2, 4, 3]


# -- ONNX: dynamic batch and time ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, step_shape",
    [(lambda: _dense_model()[0], (5,)), (lambda: _conv_model()[0], (6, 6, 3)), (lambda: _nested_lstm_model()[0], (4,))],
    ids=["dense", "conv2d", "nested_then_lstm"],
)
def test_onnx_parity_at_two_batch_and_time_sizes(build, step_shape):
    model = build()
    for seed, (batch, time) in enumerate([(2, 3), (5, 7)]):
        proto = assert_onnx_parity(model, _rand(batch, time, *step_shape, seed=seed))
    onnx.checker.check_model(proto, full_check=True)
    assert _dynamic_dims(proto.graph.input[0])[0] and _dynamic_dims(proto.graph.input[0])[1]
    assert all(_dynamic_dims(proto.graph.output[0]))


def test_onnx_parity_with_unknown_frame_size():
    # Unknown spatial dims: folding cannot use a constant shape; both reshapes read it at run time.
    model, td = _conv_model(spatial=(None, None))
    assert td.output.shape == (None, None, None, None, 4)
    for seed, shape in enumerate([(1, 2, 5, 6, 3), (3, 4, 7, 5, 3)]):
        assert_onnx_parity(model, _rand(*shape, seed=seed))


# -- shapes, weights, config ---------------------------------------------------------------------------------------
def test_compute_output_shape_and_weight_paths():
    td = layers.TimeDistributed(layers.Conv2D(8, 3, padding="same", strides=2))
    assert td.compute_output_shape((None, 10, 16, 16, 3)) == (None, 10, 8, 8, 8)
    assert not td.built
    td.build((None, 10, 16, 16, 3))
    assert td.layer.built and [w.shape for w in td.weights] == [(3, 3, 3, 8), (8,)]
    assert [w.path for w in td.weights] == ["time_distributed/conv2d/kernel", "time_distributed/conv2d/bias"]
    assert td.compute_output_shape((4, None, 16, 16, 3)) == (4, None, 8, 8, 8)
    # A wrapped layer without its own compute_output_shape (a functional model) is traced.
    step_in = keras.Input((6,))
    nested = layers.TimeDistributed(keras.Model(step_in, layers.Dense(2)(step_in)))
    assert nested.compute_output_shape((3, 7, 6)) == (3, 7, 2)


def test_config_round_trip_keeps_nested_layer():
    model, td = _dense_model()
    config = td.get_config()
    assert config["layer"]["class_name"] == "Dense" and config["layer"]["config"]["units"] == 3
    restored = keras.models.model_from_json(model.to_json())
    restored.set_weights(model.get_weights())
    x = _rand(2, 3, 5)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(restored.layers[1], layers.TimeDistributed)


def test_weights_file_groups_the_wrapped_layer_under_layer(tmp_path):
    import h5py

    model, td = _dense_model()
    model.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        assert f["layers/time_distributed/layer/vars"].attrs["name"] == "dense"
        assert sorted(f["layers/time_distributed/layer/vars"]) == ["0", "1"]
        assert f["layers/time_distributed/layer/vars/0"].shape == (5, 3)
        assert len(f["layers/time_distributed/vars"]) == 0
    fresh, _ = _dense_model()
    fresh.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- masks ---------------------------------------------------------------------------------------------------------
def test_mask_reaches_the_wrapped_layer_and_passes_through():
    ids = keras.Input((None, 4), dtype="int32")
    embedded = layers.Embedding(10, 3, mask_zero=True)(ids)
    pooled = layers.TimeDistributed(layers.GlobalAveragePooling1D())(embedded)
    assert pooled._keras_mask is not None and pooled._keras_mask.shape == (None, None, 4)
    model = keras.Model(ids, pooled)
    x = np.array([[[1, 2, 0, 0], [3, 0, 0, 0]], [[4, 5, 6, 0], [7, 8, 9, 1]]])
    table = model.layers[1].get_weights()[0]
    keep = (x != 0)[..., None]
    want = (table[x] * keep).sum(axis=2) / keep.sum(axis=2)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    assert_onnx_parity(model, x.astype("int32"))


def test_time_mask_feeds_a_following_lstm():
    ids = keras.Input((None,), dtype="int32")
    embedded = layers.Embedding(10, 4, mask_zero=True)(ids)
    dense = layers.TimeDistributed(layers.Dense(3))(embedded)
    assert dense._keras_mask.shape == (None, None)
    lstm = layers.LSTM(2)
    model = keras.Model(ids, lstm(dense))
    x = np.array([[1, 2, 0, 0], [3, 4, 5, 6]])
    short = keras.Model(ids, lstm(layers.TimeDistributed(model.layers[2].layer)(model.layers[1](ids))))
    # Padding at the end is skipped: the first row equals the same model on its two real steps.
    np.testing.assert_allclose(model.predict(x, verbose=0)[:1], short.predict(x[:1, :2], verbose=0), rtol=1e-5)
    assert_onnx_parity(model, x.astype("int32"))


# -- training -------------------------------------------------------------------------------------------------------
def test_gradients_match_finite_differences_with_dropout_in_training():
    keras.backend.set_floatx("float64")
    inputs = keras.Input((3, 4), batch_size=2)
    td_dense = layers.TimeDistributed(layers.Dense(3, activation="tanh"))
    outputs = layers.TimeDistributed(layers.Dropout(0.4, seed=3))(td_dense(inputs))
    model = keras.Model(inputs, outputs)
    training_gradcheck(model, [_rand(2, 3, 4, dtype="float64")], weights=td_dense.trainable_weights)


def test_dropout_only_active_in_training():
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, layers.TimeDistributed(layers.Dropout(0.5, seed=1))(inputs))
    x = np.ones((4, 5, 6), "float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    trained = GradientProgram(model.graph, [], training=True, rng=np.random.default_rng(0)).run([x])[0][0]
    assert set(np.unique(trained)) == {0.0, 2.0}
    assert 0.3 < np.mean(trained == 0) < 0.7
    np.testing.assert_array_equal(model.layers[1](x, training=False), x)


def test_fit_lowers_the_loss():
    model, per_step, _ = _nested_lstm_model()
    x = _rand(16, 5, 4)
    y = 0.5 * np.tanh(np.cumsum(x[..., :3], axis=1))  # learnable: a running sum of the steps
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    inner_before = [w.copy() for w in per_step.get_weights()]
    model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * before
    # The wrapped model's weights were trained through the fold/unfold.
    assert all(not np.allclose(a, b) for a, b in zip(inner_before, per_step.get_weights()))


# -- errors --------------------------------------------------------------------------------------------------------
def test_rank_two_input_is_refused_with_keras_message():
    with pytest.raises(
        ValueError, match=r"should be passed an `input_shape` with at least 3 dimensions, received: \(None, 5\)"
    ):
        layers.TimeDistributed(layers.Dense(3))(keras.Input((5,)))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        layers.TimeDistributed(layers.Dense(3)).compute_output_shape((2, 5))


def test_non_layer_is_refused():
    with pytest.raises(ValueError, match="Please initialize `TimeDistributed` layer with a `keras.layers.Layer`"):
        layers.TimeDistributed("dense")


def test_bad_masks_are_refused():
    td = layers.TimeDistributed(layers.GlobalAveragePooling1D())
    x = _rand(2, 3, 4, 5)
    with pytest.raises(ValueError, match="must be at least 2D"):
        td(x, mask=np.ones((2,), bool))
    with pytest.raises(ValueError, match=r"incompatible with the input shape \(2, 3, 4, 5\)"):
        td(x, mask=np.ones((2, 4), bool))


# -- parity with real Keras 3 ----------------------------------------------------------------------------------------
def _video(lib):
    inputs = lib.Input((3, 6, 6, 3))
    x = lib.layers.TimeDistributed(lib.layers.Conv2D(4, 3, activation="relu"))(inputs)
    x = lib.layers.TimeDistributed(lib.layers.BatchNormalization())(x)
    x = lib.layers.TimeDistributed(lib.layers.GlobalAveragePooling2D())(x)
    return lib.Model(inputs, lib.layers.LSTM(5)(x))


def _nested(lib):
    step_in = lib.Input((4,))
    per_step = lib.Model(step_in, lib.layers.Dense(2)(lib.layers.Dense(6, activation="tanh")(step_in)))
    inputs = lib.Input((None, 4))
    return lib.Model(inputs, lib.layers.LSTM(3)(lib.layers.TimeDistributed(per_step)(inputs)))


def _sequential(lib):
    inputs = lib.Input((None, 5))
    per_step = lib.Sequential([lib.layers.Dense(4, activation="relu"), lib.layers.Dropout(0.3), lib.layers.Dense(2)])
    # Named: a built Keras Sequential takes a "functional" name of its own, which irtool's does not.
    return lib.Model(inputs, lib.layers.TimeDistributed(per_step)(inputs), name="frames")


def _masked(lib):
    ids = lib.Input((None,), dtype="int32")
    x = lib.layers.Embedding(12, 4, mask_zero=True)(ids)
    x = lib.layers.TimeDistributed(lib.layers.Dense(3, activation="relu"))(x)
    return lib.Model(ids, lib.layers.LSTM(2)(x))


def _masked_pool(lib):
    ids = lib.Input((None, 4), dtype="int32")
    x = lib.layers.Embedding(12, 3, mask_zero=True)(ids)
    return lib.Model(ids, lib.layers.TimeDistributed(lib.layers.GlobalAveragePooling1D())(x))


_quiet = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
_KERAS_BUILDERS = {
    "video": _video,
    "nested": _nested,
    "masked": _masked,
    "masked_pool": _masked_pool,
    "sequential": _sequential,
}


def _inputs_for(name):
    rng = np.random.default_rng(7)
    if name == "video":
        return rng.standard_normal((2, 3, 6, 6, 3)).astype("float32")
    if name == "sequential":
        return rng.standard_normal((2, 4, 5)).astype("float32")
    if name == "nested":
        return rng.standard_normal((3, 5, 4)).astype("float32")
    if name == "masked":
        return np.array([[1, 2, 0, 0], [3, 4, 5, 6], [7, 0, 0, 0]], "int32")
    return np.array([[[1, 2, 0, 0], [3, 0, 0, 0]], [[4, 5, 6, 0], [7, 8, 9, 1]]], "int32")


def test_video_model_onnx_parity():
    # Conv2D, BatchNormalization and pooling inside wrappers, then an LSTM: the layout pass meets the folds.
    model = _video(keras)
    for seed, batch in enumerate([1, 4]):
        assert_onnx_parity(model, np.random.default_rng(seed).standard_normal((batch, 3, 6, 6, 3)).astype("float32"))


@pytest.fixture
def real():

    real = require_keras()
    real.backend.clear_session()
    real.utils.set_random_seed(0)
    return real


def _assert_close(a, b, x):
    np.testing.assert_allclose(a.predict(x, verbose=0), b.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@_quiet
@pytest.mark.parametrize("name", sorted(_KERAS_BUILDERS))
def test_same_weights_same_predictions_as_keras(real, name):
    theirs = _KERAS_BUILDERS[name](real)
    ours = _KERAS_BUILDERS[name](keras)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    _assert_close(ours, theirs, _inputs_for(name))


@_quiet
def test_output_shapes_and_masks_match_keras(real):
    for lib in (real, keras):
        frames = lib.Input((None, 8, 8, 3), batch_size=2)
        td = lib.layers.TimeDistributed(lib.layers.Conv2D(5, 3, strides=2, padding="same"))
        assert tuple(td(frames).shape) == (2, None, 4, 4, 5)
        assert tuple(td.compute_output_shape((2, 7, 8, 8, 3))) == (2, 7, 4, 4, 5)
        ids = lib.Input((None,), dtype="int32")
        out = lib.layers.TimeDistributed(lib.layers.Dense(2))(lib.layers.Embedding(5, 3, mask_zero=True)(ids))
        assert tuple(out._keras_mask.shape) == (None, None)


@_quiet
@pytest.mark.parametrize("name", sorted(_KERAS_BUILDERS))
def test_configs_both_ways_with_keras(real, name):
    x = _inputs_for(name)
    theirs = _KERAS_BUILDERS[name](real)
    ours = keras.models.model_from_json(theirs.to_json())
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    _assert_close(ours, theirs, x)

    source = _KERAS_BUILDERS[name](keras)
    rebuilt = real.models.model_from_json(source.to_json())
    rebuilt.set_weights(source.get_weights())
    _assert_close(source, rebuilt, x)

    def wrapper_configs(model):
        # The layer entries (nested layer and build configs included); the call records are another file's concern.
        layers_ = json.loads(model.to_json())["config"]["layers"]
        return [
            {k: v for k, v in e.items() if k != "inbound_nodes"}
            for e in layers_
            if e["class_name"] == "TimeDistributed"
        ]

    real.backend.clear_session()
    keras.backend.clear_session()
    assert wrapper_configs(_KERAS_BUILDERS[name](keras)) == wrapper_configs(_KERAS_BUILDERS[name](real))


@_quiet
@pytest.mark.parametrize("name", sorted(_KERAS_BUILDERS))
def test_keras_files_both_ways(real, tmp_path, name):
    x = _inputs_for(name)
    source = _KERAS_BUILDERS[name](keras)
    source.save(tmp_path / "ours.keras")
    _assert_close(source, real.saving.load_model(tmp_path / "ours.keras"), x)
    theirs = _KERAS_BUILDERS[name](real)
    theirs.save(tmp_path / "theirs.keras")
    _assert_close(theirs, keras.models.load_model(tmp_path / "theirs.keras"), x)


@_quiet
@pytest.mark.parametrize("name", sorted(_KERAS_BUILDERS))
def test_weights_files_have_keras_layout(real, tmp_path, name):
    from ..saving.test_weights import h5_tree

    theirs = _KERAS_BUILDERS[name](real)
    ours = _KERAS_BUILDERS[name](keras)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    ours.save_weights(tmp_path / "ours.weights.h5")
    assert h5_tree(tmp_path / "ours.weights.h5") == h5_tree(tmp_path / "theirs.weights.h5")
    ours.load_weights(tmp_path / "theirs.weights.h5")
    _assert_close(ours, theirs, _inputs_for(name))


@pytest.mark.parametrize("inner", [lambda: layers.Dense(3), lambda: layers.Conv1D(2, 2)], ids=["dense", "conv1d"])
def test_layer_harness(inner):
    """Shapes, configs, .keras file, ONNX and gradients (tests/harness.py); Keras parity is in
    the tests above (a wrapped layer object cannot be handed to Keras' constructor)."""
    run_layer_test(layers.TimeDistributed, {"layer": inner()}, (3, 4, 2), keras_parity=False)
