"""compile / fit / evaluate with Keras 3 semantics."""

import numpy as np
import pytest

import irtool as keras
from irtool import layers

RNG = np.random.default_rng(0)


def classifier(name="clf"):
    inputs = keras.Input((8,), name="x")
    hidden = layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(3, name="probs")(hidden), name=name)


def data(n=96):
    x = RNG.standard_normal((n, 8)).astype("float32")
    y = (x[:, :3].argmax(1)).astype("int64")
    return x, y


def test_fit_reduces_loss_and_returns_history():
    x, y = data()
    model = classifier()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["acc"])
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    assert set(history.history) == {"loss", "acc"}
    assert history.epoch == list(range(40))
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.75
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "acc"}


def test_compile_is_required():
    with pytest.raises(ValueError, match="You must call `compile\\(\\)` before using the model."):
        classifier().fit(*data(), verbose=0)


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = data(100)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    val_loss = model.evaluate(x[75:], y[75:], verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][0], val_loss, rtol=1e-5)
    with pytest.raises(ValueError, match="not sufficient to split"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)


def test_validation_data_and_freq():
    x, y = data(64)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, validation_data=(x[:16], y[:16]), validation_freq=2, verbose=0)
    assert len(history.history["val_loss"]) == 2 and "val_accuracy" in history.history


def test_multi_output_losses_weights_metrics_and_evaluate_order():
    inputs = keras.Input((4,), name="x")
    h = layers.Dense(8, activation="relu")(inputs)
    reg = layers.Dense(1, name="reg")(h)
    cls = layers.Dense(2, activation="softmax", name="cls")(h)
    model = keras.Model(inputs, [reg, cls])
    model.compile(
        optimizer="adam",
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        loss_weights={"reg": 1.0, "cls": 0.5},
        metrics={"reg": ["mae"], "cls": ["accuracy"]},
    )
    x = RNG.standard_normal((32, 4)).astype("float32")
    y_reg, y_cls = x.sum(1, keepdims=True), (x[:, 0] > 0).astype("int64")
    history = model.fit(x, {"reg": y_reg, "cls": y_cls}, epochs=2, verbose=0)
    assert set(history.history) == {"loss", "reg_loss", "cls_loss", "reg_mae", "cls_accuracy"}
    result = model.evaluate(x, [y_reg, y_cls], verbose=0)
    logs = model.evaluate(x, [y_reg, y_cls], verbose=0, return_dict=True)
    assert list(logs) == sorted(logs)
    np.testing.assert_allclose(result, [logs[k] for k in ("loss", "reg_loss", "cls_loss", "cls_accuracy", "reg_mae")])
    np.testing.assert_allclose(logs["loss"], logs["reg_loss"] + 0.5 * logs["cls_loss"], rtol=1e-5)


def test_sample_weight_and_class_weight_scale_the_loss():
    x, y = data(32)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    base = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=np.full(32, 2.0), verbose=0), 2 * base, rtol=1e-5)
    model.fit(x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(32), verbose=0)


def test_train_and_test_on_batch():
    x, y = data(16)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.test_on_batch(x, y)
    model.train_on_batch(x, y)
    after = model.test_on_batch(x, y)
    assert len(before) == 2 and after[0] < before[0]


def test_trained_model_exports_with_parity():
    from ..conftest import assert_onnx_parity

    x, y = data(32)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    assert_onnx_parity(model, x)


def test_progress_output_verbose_2(capsys):
    x, y = data(32)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[1].startswith("2/2 - ") and " - loss: " in out[1]


def test_evaluate_lists_the_output_losses_in_the_loss_dicts_order():
    """As Keras: dict outputs {"z", "a"} with loss={"a": ..., "z": ...} give [loss, a_loss, z_loss]
    (irtool listed them by sorted output key, so unpacking by position swapped them)."""
    inputs = keras.Input((3,))
    outputs = {
        "z": layers.Dense(1, name="lay_z", kernel_initializer="zeros")(inputs),
        "a": layers.Dense(1, name="lay_a", kernel_initializer="zeros")(inputs),
    }
    x, y = np.ones((4, 3), "float32"), {"z": np.full((4, 1), 10.0, "float32"), "a": np.ones((4, 1), "float32")}
    for losses, want in (({"a": "mse", "z": "mse"}, [101, 1, 100]), ({"z": "mse", "a": "mse"}, [101, 100, 1])):
        model = keras.Model(inputs, outputs)
        model.compile(loss=losses)
        np.testing.assert_allclose(model.evaluate(x, y, verbose=0), want)


def test_a_sequential_model_without_an_input_compiles_and_builds_on_its_first_batch():
    """The callbacks guide's get_model(): Sequential(), add(Dense(1)), compile, then fit."""
    model = keras.Sequential()
    model.add(layers.Dense(1))
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.1), loss="mse", metrics=["mae"])
    assert not model.built and model.metrics_names == ["loss", "compile_metrics"]
    x = RNG.random((64, 8)).astype("float32")
    history = model.fit(x, x.sum(1), batch_size=32, epochs=2, verbose=0)
    assert model.built and model.input_shape == (None, 8) and set(history.history) == {"loss", "mae"}
    assert history.history["loss"][1] < history.history["loss"][0]
    fresh = keras.Sequential([layers.Dense(2)])
    fresh.compile(loss="mse")
    assert np.isfinite(fresh.evaluate(x, np.zeros((64, 2)), verbose=0))


def test_a_variable_set_on_a_layer_is_its_weight_and_trains():
    """The saving guide's ``self.scale = keras.Variable(1.0)``: tracked, trained and saved as Keras does."""

    class Scaled(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.scale = keras.Variable(1.0, name="scale")

        def call(self, x):
            return x * self.scale

    layer = Scaled()
    inputs = keras.Input((1,))
    model = keras.Model(inputs, layer(inputs))
    assert [w.name for w in layer.weights] == ["scale"] and len(model.trainable_weights) == 1
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.ones((8, 1), "float32")
    model.fit(x, 3 * x, epochs=5, verbose=0)
    assert 1.5 < float(layer.scale.numpy()) < 3.0


def test_assign_add_and_assign_sub():
    total = keras.Variable(np.zeros(2, "float32"))
    total.assign_add([1, 2])
    total.assign_add(np.ones(2))
    total.assign_sub(0.5)
    np.testing.assert_array_equal(total.numpy(), [1.5, 2.5])


class Batches(keras.utils.PyDataset):
    """The training guide's PyDataset: batches by index, counting its epochs."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.epochs = x, y, batch_size, 0

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_end(self):
        self.epochs += 1


def test_fit_evaluate_and_predict_read_batches_from_a_pydataset_or_a_generator():
    """The same batches as arrays with shuffle=False give the same weights; a generator needs steps."""
    x, y = data(64)
    models = [classifier(f"m{i}") for i in range(3)]
    for m in models[1:]:
        m.set_weights(models[0].get_weights())
    for m in models:
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    dataset = Batches(x, y, 16)
    history = models[0].fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(x, y))
    from_dataset = models[1].fit(dataset, epochs=2, shuffle=False, verbose=0, validation_data=Batches(x, y, 32))
    assert dataset.epochs == 2

    def generator():
        while True:
            for i in range(0, 64, 16):
                yield x[i : i + 16], y[i : i + 16]

    models[2].fit(generator(), steps_per_epoch=4, epochs=2, verbose=0)
    for m in models[1:]:
        for a, b in zip(m.get_weights(), models[0].get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(from_dataset.history["val_loss"], history.history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(models[1].evaluate(dataset, verbose=0), models[0].evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(models[1].predict(dataset, verbose=0), models[0].predict(x, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(
        models[2].predict((x[i : i + 16] for i in range(0, 64, 16)), verbose=0), models[0].predict(x, verbose=0)
    )


def test_batch_sources_say_what_is_wrong():
    x, y = data(32)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="`y`, `sample_weight` and `validation_split` cannot be given"):
        model.fit(Batches(x, y, 8), y, verbose=0)
    with pytest.raises(ValueError, match="The generator ran out after 2 batches, but 3 steps were asked for"):
        model.fit(iter([(x[:8], y[:8]), (x[8:16], y[8:16])]), steps_per_epoch=3, verbose=0)
    with pytest.raises(ValueError, match="A batch must be x, \\(x,\\), \\(x, y\\) or \\(x, y, sample_weight\\)"):
        model.fit(iter([(x, y, None, None)]), verbose=0)


def test_pad_sequences_as_keras():
    sequences = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10]]
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequences), [[0, 0, 1, 2, 3], [0, 0, 0, 4, 5], [6, 7, 8, 9, 10]]
    )
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequences, maxlen=3, padding="post", truncating="post", value=-1),
        [[1, 2, 3], [4, 5, -1], [6, 7, 8]],
    )
    assert keras.utils.pad_sequences([[1.5]], maxlen=2, dtype="float32").tolist() == [[0.0, 1.5]]
    with pytest.raises(ValueError, match='`padding` must be "pre" or "post"'):
        keras.utils.pad_sequences(sequences, padding="middle")


def test_evaluate_and_validation_read_generators_too():
    x, y = data(32)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")

    def batches():
        while True:
            for i in range(0, 32, 16):
                yield x[i : i + 16], y[i : i + 16]

    history = model.fit(x, y, epochs=2, verbose=0, validation_data=batches(), validation_steps=2)
    np.testing.assert_allclose(history.history["val_loss"][-1], model.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(
        model.evaluate(batches(), steps=2, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )


def test_a_pydatasets_batches_are_shuffled_each_epoch_unless_shuffle_is_false():
    x, y = data(64)
    seen = []

    class Logged(Batches):
        def __getitem__(self, index):
            seen.append(index)
            return super().__getitem__(index)

    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    keras.utils.set_random_seed(1)
    model.fit(Logged(x, y, 8), epochs=2, verbose=0)
    assert sorted(seen[:8]) == list(range(8)) and seen[:8] != list(range(8)) and seen[:8] != seen[8:]
    seen.clear()
    model.fit(Logged(x, y, 8), epochs=1, shuffle=False, verbose=0)
    assert seen == list(range(8))


def test_output_names_of_losses_and_metrics():
    """Dict outputs are logged by their keys (as Keras); list outputs of one layer get unique names;
    a loss dict orders evaluate()'s list for dict outputs only (list outputs keep their order)."""
    inputs = keras.Input((3,))
    h = layers.Dense(2, kernel_initializer="ones", name="shared")(inputs)
    x = np.ones((4, 3), "float32")
    zeros = np.zeros((4, 2), "float32")
    model = keras.Model(inputs, {"out1": h, "out2": h * 2.0})
    model.compile(loss={"out2": "mae", "out1": "mse"})
    assert model.evaluate(x, {"out1": zeros, "out2": zeros}, verbose=0, return_dict=True) == {
        "loss": 15.0,
        "out1_loss": 9.0,
        "out2_loss": 6.0,
    }
    assert model.evaluate(x, {"out1": zeros, "out2": zeros}, verbose=0) == [15.0, 6.0, 9.0]
    listed = keras.Model(inputs, [h, h * 2.0])  # outputs "shared" and a "multiply" op
    listed.compile(loss={listed.output_names[1]: "mae", "shared": "mse"})
    assert listed.evaluate(x, [zeros, zeros], verbose=0) == [15.0, 9.0, 6.0]

    class Twice(keras.Model):  # a subclassed model's outputs all come from the model itself
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(2, kernel_initializer="ones")

        def call(self, x):
            y = self.dense(x)
            return [y, y * 2.0]

    twice = Twice(name="twice")
    twice.compile(loss=["mse", "mae"])
    logs = twice.evaluate(x, [zeros, zeros], verbose=0, return_dict=True)
    assert logs == {"loss": 15.0, "twice_loss": 9.0, "twice_1_loss": 6.0}


def test_a_generator_that_runs_out_stops_training_and_cannot_evaluate_again():
    x, y = data(32)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    three = ((x[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8))
    with pytest.warns(UserWarning, match="The training data ran out of batches at epoch 2; training stops here"):
        history = model.fit(three, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1
    spent = iter([[x[:8], y[:8]]])  # a list batch reads as (x, y), as in Keras
    model.evaluate(spent, verbose=0)
    with pytest.raises(ValueError, match="The evaluation data produced no batches"):
        model.evaluate(spent, verbose=0)
