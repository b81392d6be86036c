"""Subclassed models (``class MyModel(keras.Model)`` with its own ``call``): eager calls run ``call``;
predict, fit, evaluate and export trace it into a functional twin that shares its weights. Checked
against real Keras (the loss trajectory of ``fit``, ``.keras`` files both ways) and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

import irtool
from irtool import layers

from ..harness import get_keras, run_onnx

RNG = np.random.default_rng(3)
X = RNG.random((16, 3)).astype("float32")
Y = X[:, :2] * 2 - 1


def _mlp_class(lib, rate=0.25):
    class Mlp(lib.Model):
        def __init__(self, units=8, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.hidden = lib.layers.Dense(units, activation="relu")
            self.norm = lib.layers.BatchNormalization()
            self.drop = lib.layers.Dropout(rate)
            self.head = lib.layers.Dense(2)

        def call(self, x, training=None):
            return self.head(self.drop(self.norm(self.hidden(x), training=training), training=training))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return Mlp


def test_predict_fit_evaluate_and_export_run_the_traced_call():
    model = _mlp_class(irtool)(name="mlp")
    np.testing.assert_allclose(model.predict(X, verbose=0), model(X), rtol=1e-6)
    assert [layer.name for layer in model.layers] == ["dense", "batch_normalization", "dropout", "dense_1"]
    assert [w.path for w in model.weights][:2] == ["mlp/dense/kernel", "mlp/dense/bias"]  # as Keras names them
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(X, Y, epochs=2, batch_size=4, validation_split=0.25, verbose=0)
    assert model.history is history and set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert model.optimizer.iterations.numpy() == 6  # 12 training rows / 4, twice
    loss, mae = model.evaluate(X, Y, verbose=0)
    assert np.isfinite(loss) and np.isfinite(mae)
    proto = model.to_onnx()  # what export() writes
    np.testing.assert_allclose(run_onnx(proto, {proto.graph.input[0].name: X})[0], model(X), atol=1e-6)


def test_export_before_any_data_traces_the_built_shapes(tmp_path):
    model = _mlp_class(irtool)()
    with pytest.raises(ValueError, match="is a subclassed model that has not been built: call it on data"):
        model.export(tmp_path / "m.onnx")
    model.build((None, 3))
    assert len(model.weights) == 8  # build traced the call: the weights exist, as in Keras
    proto = model.to_onnx()
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and dims[1].dim_value == 3
    np.testing.assert_allclose(
        run_onnx(proto, {proto.graph.input[0].name: X})[0], model.predict(X, verbose=0), atol=1e-6
    )


def test_dict_inputs_and_a_first_eager_call():
    class Pair(irtool.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(4)

        def call(self, inputs):
            return self.dense(inputs["a"]) - self.dense(inputs["b"])

    model = Pair()
    data = {"a": X, "b": X[::-1].copy()}
    want = model(data)
    proto = model.to_onnx()  # traced from the shapes of the first call
    assert sorted(i.name for i in proto.graph.input) == ["a", "b"]
    np.testing.assert_allclose(run_onnx(proto, data)[0], want, atol=1e-6)
    np.testing.assert_allclose(model.predict(data, verbose=0), want, atol=1e-6)


def test_same_training_as_keras_and_keras_files_both_ways(tmp_path):
    keras = get_keras()
    if keras is None:
        pytest.skip("keras is not installed")
    # no dropout: the two libraries draw different masks
    theirs = keras.saving.register_keras_serializable(package="subclassed_test")(_mlp_class(keras, 0.0))(name="mlp")
    ours = irtool.saving.register_keras_serializable(package="subclassed_test")(_mlp_class(irtool, 0.0))(name="mlp")
    theirs(X)
    ours(X)
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.get_weights()])
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    for lib, model in ((keras, theirs), (irtool, ours)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
    want = theirs.fit(X, Y, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
    got = ours.fit(X, Y, epochs=3, batch_size=8, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    ours.save(tmp_path / "ours.keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "ours.keras").predict(X, verbose=0)),
        ours.predict(X, verbose=0),
        atol=1e-5,
    )
    theirs.save(tmp_path / "theirs.keras")
    loaded = irtool.saving.load_model(tmp_path / "theirs.keras")
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), keras.ops.convert_to_numpy(theirs.predict(X, verbose=0)), atol=1e-5
    )


def test_a_model_with_its_own_build_exports_from_the_shapes_it_was_built_with():
    class Scaled(irtool.Model):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

        def call(self, x):
            return x * self.scale

    model = Scaled()
    model(X)
    proto = model.to_onnx()
    np.testing.assert_allclose(run_onnx(proto, {proto.graph.input[0].name: X})[0], X)


def test_a_call_defaulting_to_training_false_still_trains_its_layers():
    """Keras' fit calls model(x, training=True): a `call(x, training=False)` default must not freeze
    BatchNormalization (the twin is traced with training=None, so its layers act by mode)."""

    class M(irtool.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm = layers.BatchNormalization()
            self.head = layers.Dense(1)

        def call(self, x, training=False):
            return self.head(self.norm(x, training=training))

    model = M()
    model.compile(optimizer="sgd", loss="mse")
    x = np.arange(24, dtype="float32").reshape(8, 3) + 5
    model.fit(x, np.ones((8, 1), "float32"), epochs=1, batch_size=8, verbose=0)
    np.testing.assert_allclose(model.norm.moving_mean.numpy(), 0.01 * x.mean(axis=0), rtol=1e-5)


def test_callbacks_see_the_subclassed_model(tmp_path):
    model = irtool.saving.register_keras_serializable(package="subclassed_test")(_mlp_class(irtool, 0.0))(name="mlp")
    model.compile(optimizer="sgd", loss="mse")
    seen = []
    checkpoint = irtool.callbacks.ModelCheckpoint(tmp_path / "best.keras")
    spy = irtool.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(checkpoint.model))
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[checkpoint, spy])
    assert seen == [model, model]
    loaded = irtool.saving.load_model(tmp_path / "best.keras")
    assert type(loaded).__name__ == "Mlp"
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)


def test_the_export_signature_is_the_first_one_not_the_last_predicted():
    model = _mlp_class(irtool)()
    model.predict(X, verbose=0)
    model.predict(X.astype("float64"), verbose=0)  # another signature: another twin, for predict only
    proto = model.to_onnx()
    assert proto.graph.input[0].type.tensor_type.elem_type == 1  # float32, as first traced


def test_an_init_with_a_differently_named_var_keyword_saves_and_loads(tmp_path):
    @irtool.saving.register_keras_serializable(package="subclassed_test")
    class Small(irtool.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.dense = layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    model = Small(name="small")
    model.predict(X, verbose=0)
    model.save(tmp_path / "small.keras")
    np.testing.assert_allclose(
        irtool.saving.load_model(tmp_path / "small.keras").predict(X, verbose=0), model.predict(X, verbose=0)
    )


def test_one_twin_for_every_sequence_length_and_float_inputs_in_floatx():
    class Tagger(irtool.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embed = layers.Embedding(10, 4)
            self.rnn = layers.GRU(3)
            self.head = layers.Dense(2)

        def call(self, x):
            return self.head(self.rnn(self.embed(x)))

    model = Tagger()
    for length in range(1, 6):
        model.predict(np.ones((2, length), "int32"), verbose=0)
    assert len(model._twins) == 1 and len(model.embed._inbound_nodes) == 1  # traced once, length unknown
    dims = model.to_onnx().graph.input[0].type.tensor_type.shape.dim
    assert not dims[1].HasField("dim_value")  # the export takes any length too
    dense = _mlp_class(irtool)()
    dense.predict(X.astype("float64"), verbose=0)  # float64 data: float32 inputs, as Keras autocasts
    assert dense.to_onnx().graph.input[0].type.tensor_type.elem_type == 1
    dense.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    dense.fit(X, Y, epochs=1, verbose=0)
    assert [m.name for m in dense.metrics] == ["loss", "mae"] and dense.metrics[1].result() > 0


def test_a_signature_that_must_stay_exact_is_traced_once():
    """Flatten before a Dense needs every dim: the general trace fails once, is remembered, and
    later predicts reuse the exact twin instead of trying again."""

    class Flat(irtool.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.flatten = layers.Flatten()
            self.head = layers.Dense(2)

        def call(self, x):
            return self.head(self.flatten(x))

    model = Flat()
    x = RNG.random((2, 3, 4)).astype("float32")
    model.predict(x, verbose=0)
    calls = len(model.flatten._inbound_nodes)
    for _ in range(3):
        model.predict(x, verbose=0)
    assert len(model.flatten._inbound_nodes) == calls and len(model._twins) == 1
