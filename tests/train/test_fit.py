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
