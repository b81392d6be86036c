"""Callbacks driven through fit's hook sequence with a fake model."""

import math
import os
import warnings

import numpy as np
import pytest

import irtool.callbacks as callbacks
from irtool.train import progbar as progbar_module
from irtool.train.callbacks import CallbackList, pythonify_logs

from ._fakes import FakeModel, run_epochs

BAR = "━" * 20


class Recorder(callbacks.Callback):
    HOOKS = [
        "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end",
        "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin",
        "on_test_batch_end", "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
    ]  # fmt: skip

    def __init__(self):
        super().__init__()
        self.calls = []
        for hook in self.HOOKS:
            base = getattr(self, hook)
            setattr(self, hook, self._wrap(hook, base))

    def _wrap(self, hook, base):
        def record(*args, **kwargs):
            self.calls.append((hook, *args, *kwargs.values()))
            return base(*args, **kwargs)

        return record


@pytest.fixture
def fake_clock(monkeypatch):
    """``time.time`` advancing 0.25 s per call."""
    state = {"t": 1000.0}

    def now():
        state["t"] += 0.25
        return state["t"]

    monkeypatch.setattr(progbar_module.time, "time", now)
    return state


# ---------------------------------------------------------------- base class and CallbackList


def test_public_namespace():
    import irtool.train.callbacks as impl

    for name in callbacks.__all__:
        assert getattr(callbacks, name) is getattr(impl, name)


def test_callback_defaults_and_batch_aliases():
    cb = Recorder()
    assert cb.params is None and cb.model is None
    model = FakeModel()
    cb.set_model(model)
    cb.set_params({"epochs": 1})
    assert cb.model is model and cb.params == {"epochs": 1}
    cb.on_train_batch_begin(0, {"a": 1})
    cb.on_train_batch_end(0, {"loss": 1.0})
    # the train-batch hooks forward to the old on_batch_* names, like Keras
    assert cb.calls == [
        ("on_train_batch_begin", 0, {"a": 1}),
        ("on_batch_begin", 0, {"a": 1}),
        ("on_train_batch_end", 0, {"loss": 1.0}),
        ("on_batch_end", 0, {"loss": 1.0}),
    ]


def test_callback_list_adds_history_and_progbar_last():
    user = Recorder()
    model = FakeModel()
    cbs = CallbackList([user], add_history=True, add_progbar=True, model=model, verbose=1, epochs=3, steps=5)
    assert [type(c).__name__ for c in cbs.callbacks] == ["Recorder", "History", "ProgbarLogger"]
    assert model.history is cbs.callbacks[1]
    for cb in cbs.callbacks:
        assert cb.model is model
    # ProgbarLogger.set_params reads the params without storing them, like Keras
    assert user.params == cbs.callbacks[1].params == {"verbose": 1, "epochs": 3, "steps": 5}
    progbar = cbs.callbacks[2]
    assert (progbar.verbose, progbar.epochs, progbar.target) == (1, 3, 5)


def test_callback_list_keeps_given_history_and_progbar():
    history, logger = callbacks.History(), callbacks.ProgbarLogger()
    cbs = CallbackList([[logger], history], add_history=True, add_progbar=True, verbose=0, epochs=1, steps=1)
    assert cbs.callbacks == [logger, history]
    assert CallbackList(None).callbacks == []
    assert CallbackList(history).callbacks == [history]
    # no params -> set_params is not called
    assert CallbackList([callbacks.Callback()]).callbacks[0].params is None


def test_callback_list_dispatch_order_and_logs():
    rec = Recorder()
    cbs = CallbackList([rec], model=FakeModel())
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_train_batch_begin(0)
    cbs.on_train_batch_end(0, {"loss": np.float32(0.5), "acc": np.array(0.25), "nested": {"z": 1}})
    cbs.on_test_begin()
    cbs.on_test_batch_begin(0)
    cbs.on_test_batch_end(0, {"loss": 0.1})
    cbs.on_test_end({"loss": 0.1})
    cbs.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.1})
    cbs.on_train_end({"loss": 0.5})
    cbs.on_predict_begin()
    cbs.on_predict_batch_begin(0)
    outputs = np.ones((2, 3))
    cbs.on_predict_batch_end(0, {"outputs": outputs})
    cbs.on_predict_end()
    names = [c[0] for c in rec.calls]
    assert names == [
        "on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_batch_begin", "on_train_batch_end",
        "on_batch_end", "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end", "on_epoch_end",
        "on_train_end", "on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end",
    ]  # fmt: skip
    batch_logs = rec.calls[4][2]
    # sorted keys, nested dicts flattened, scalars as Python floats
    assert list(batch_logs) == ["acc", "loss", "z"]
    assert all(type(v) is float for v in batch_logs.values())
    assert rec.calls[1] == ("on_epoch_begin", 0, {})
    assert rec.calls[14][2]["outputs"] is outputs


def test_end_without_begin_raises():
    with pytest.raises(ValueError, match="without corresponding"):
        CallbackList([]).on_test_end()


def test_pythonify_logs():
    logs = pythonify_logs({"b": np.float64(2), "a": 1, "s": "text", "arr": np.arange(3), "d": {"c": np.int64(3)}})
    assert logs == {"a": 1.0, "arr": logs["arr"], "b": 2.0, "c": 3.0, "s": "text"}
    assert list(logs) == ["a", "arr", "b", "c", "s"]
    assert pythonify_logs(None) == {}


def test_callbacks_share_one_logs_dict():
    """A callback adding to the logs (ReduceLROnPlateau's learning_rate) is seen by History after it."""
    model = FakeModel(learning_rate=0.5)
    cbs = run_epochs([callbacks.ReduceLROnPlateau(monitor="loss")], model, [{"loss": 1.0}, {"loss": 0.5}])
    assert cbs._history.history == {"loss": [1.0, 0.5], "learning_rate": [0.5, 0.5]}


# ---------------------------------------------------------------- History


def test_history():
    model = FakeModel()
    cbs = run_epochs([], model, [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5, "val_loss": 1.5}], steps=5)
    history = model.history
    assert history is cbs._history
    assert history.history == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5]}
    assert history.epoch == [0, 1]
    assert history.params == {"verbose": 0, "epochs": 2, "steps": 5}


# ---------------------------------------------------------------- ProgbarLogger


def test_progbar_logger_verbose1_fit(capsys, fake_clock):
    model = FakeModel()
    batch_logs = {(0, 0): {"loss": 0.9}, (0, 1): {"loss": 0.8}, (1, 0): {"loss": 0.5}, (1, 1): {"loss": 0.4}}
    run_epochs(
        [],
        model,
        [{"loss": 0.8, "accuracy": 0.5, "val_loss": 0.7}, {"loss": 0.4, "accuracy": 0.75, "val_loss": 0.3}],
        verbose=1,
        batch_logs=batch_logs,
    )
    out = capsys.readouterr().out

    # the clock advances 0.25 s per reading: bar created, step 1, step 2, final update
    def epoch(first, second, final):
        line1 = f"1/2 {BAR} 0s 250ms/step - loss: {first}"
        line2 = f"2/2 {BAR} 0s 250ms/step - loss: {second}"
        # names keep the order they were first seen in (loss from the batches), new ones follow sorted
        last = f"2/2 {BAR} 1s 500ms/step - {final}\n"
        return "\r" + line1 + "\b" * len(line1) + "\r" + line2 + "\b" * len(line2) + "\r" + last

    assert out == (
        "Epoch 1/2\n"
        + epoch("0.9000", "0.8000", "loss: 0.8000 - accuracy: 0.5000 - val_loss: 0.7000")
        + "Epoch 2/2\n"
        + epoch("0.5000", "0.4000", "loss: 0.4000 - accuracy: 0.7500 - val_loss: 0.3000")
    )


def test_progbar_logger_verbose2_fit_one_epoch(capsys, fake_clock):
    run_epochs([], FakeModel(), [{"loss": 0.71694, "val_loss": 0.0001}], steps=4, verbose=2)
    # one epoch: no "Epoch 1/1" line; nothing until the end of the epoch; 0.25 s / 4 steps rounds half-even
    assert capsys.readouterr().out == "4/4 - 0s - 62ms/step - loss: 0.7169 - val_loss: 1.0000e-04\n"


def test_progbar_logger_validation_inside_fit_is_silent(capsys, fake_clock):
    cbs = CallbackList([], add_progbar=True, model=FakeModel(), verbose=1, epochs=1, steps=1)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_train_batch_begin(0)
    cbs.on_train_batch_end(0, {"loss": 1.0})
    before = capsys.readouterr().out
    cbs.on_test_begin()
    cbs.on_test_batch_begin(0)
    cbs.on_test_batch_end(0, {"loss": 2.0})
    cbs.on_test_end({"loss": 2.0})
    assert capsys.readouterr().out == ""
    cbs.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    cbs.on_train_end()
    assert before.startswith("\r1/1")
    assert capsys.readouterr().out.endswith(f"\r1/1 {BAR} 0s 500ms/step - loss: 1.0000 - val_loss: 2.0000\n")


def test_progbar_logger_evaluate_and_predict(capsys, fake_clock):
    cbs = CallbackList([], add_progbar=True, model=FakeModel(), verbose="auto", epochs=1, steps=2)
    cbs.on_test_begin()
    for step in range(2):
        cbs.on_test_batch_begin(step)
        cbs.on_test_batch_end(step, {"loss": 0.25, "mae": 0.5})
    cbs.on_test_end({"loss": 0.1233, "mae": 0.0})
    out = capsys.readouterr().out
    assert out.endswith(f"\r2/2 {BAR} 1s 500ms/step - loss: 0.1233 - mae: 0.0000e+00\n")
    cbs = CallbackList([], add_progbar=True, model=FakeModel(), verbose=1, epochs=1, steps=4)
    cbs.on_predict_begin()
    for step in range(4):
        cbs.on_predict_batch_begin(step)
        cbs.on_predict_batch_end(step, {"outputs": np.zeros((3, 1))})
    cbs.on_predict_end()
    out = capsys.readouterr().out
    assert out.endswith(f"\r4/4 {BAR} 1s 333ms/step\n")
    assert "outputs" not in out


def test_progbar_logger_unknown_steps(capsys, fake_clock):
    cbs = CallbackList([], add_progbar=True, model=FakeModel(), verbose=1, epochs=1, steps=None)
    cbs.on_predict_begin()
    for step in range(3):
        cbs.on_predict_batch_end(step, {})
    cbs.on_predict_end()
    out = capsys.readouterr().out
    assert "      1/Unknown" in out
    assert out.endswith(f"\r3/3 {BAR} 1s 375ms/step\n")


def test_no_progbar_when_verbose0(capsys):
    run_epochs([], FakeModel(), [{"loss": 1.0}, {"loss": 0.5}], verbose=0)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- EarlyStopping


def stop_epochs(cb, values, key="val_loss", model=None):
    """Run epochs with ``values`` of ``key``; return (epochs run, printed text)."""
    model = model or FakeModel()
    logs = [{"loss": 0.0, key: v} for v in values]
    cbs = run_epochs([cb], model, logs)
    return len(cbs._history.epoch), model


@pytest.mark.parametrize(
    "kwargs, values, ran",
    [
        ({}, [1.0, 1.0, 0.5], 2),  # patience 0: first non-improvement (epoch > 0) stops
        ({"patience": 2}, [1.0, 0.9, 0.95, 0.96, 0.5], 4),
        ({"patience": 2}, [1.0, 0.9, 0.95, 0.8, 0.85, 0.7], 6),
        ({"patience": 1, "min_delta": 0.2}, [1.0, 0.85, 0.7, 0.6], 2),  # 0.15 < min_delta: not an improvement
        ({"patience": 1, "min_delta": -0.2}, [1.0, 0.85, 0.7, 0.6], 2),  # negative min_delta: abs() like Keras
        ({"patience": 3}, [1.0, 0.9, 0.95, 0.96, 0.97], 5),
        # improvements that do not beat the baseline do not reset the patience count
        ({"patience": 3, "baseline": 0.5}, [1.0, 0.9, 0.95, 0.96, 0.97], 3),
        ({"patience": 3, "baseline": 0.95}, [1.0, 0.9, 0.95, 0.96, 0.97], 5),
        ({"start_from_epoch": 2}, [1.0, 2.0, 3.0, 2.5, 2.6], 5),  # epochs 0-1 unmonitored; 3.0 then 2.5, 2.6
        ({"start_from_epoch": 2}, [1.0, 2.0, 3.0, 3.5, 2.6], 4),
    ],
)
def test_early_stopping_rules(kwargs, values, ran):
    assert stop_epochs(callbacks.EarlyStopping(**kwargs), values)[0] == ran


def test_early_stopping_max_mode_and_auto_direction():
    assert stop_epochs(callbacks.EarlyStopping(monitor="acc", mode="max"), [0.5, 0.6, 0.55], "acc")[0] == 3
    assert stop_epochs(callbacks.EarlyStopping(monitor="val_accuracy"), [0.5, 0.6, 0.55], "val_accuracy")[0] == 3
    assert stop_epochs(callbacks.EarlyStopping(monitor="val_mae"), [0.5, 0.6], "val_mae")[0] == 2
    assert stop_epochs(callbacks.EarlyStopping(monitor="out_loss"), [0.5, 0.4, 0.6], "out_loss")[0] == 3


def test_early_stopping_direction_from_model_metrics():
    class Metric:
        def __init__(self, name, direction):
            self.name, self._direction = name, direction

    class Container:
        metrics = [Metric("score", "up")]

    model = FakeModel()
    model.metrics = [Metric("loss", "down"), Container()]
    assert stop_epochs(callbacks.EarlyStopping(monitor="val_score"), [0.5, 0.6, 0.55], "val_score", model)[0] == 3


def test_early_stopping_unknown_direction_raises():
    with pytest.raises(ValueError, match="isn't able to automatically determine"):
        stop_epochs(callbacks.EarlyStopping(monitor="zorp"), [1.0], "zorp")


def test_unknown_mode_warns():
    with pytest.warns(UserWarning, match="mode 'up' is unknown, fallback to auto mode"):
        cb = callbacks.EarlyStopping(mode="up")
    assert cb.mode == "auto"


def test_early_stopping_missing_metric_warns():
    model = FakeModel()
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_loss` which is not available. "
                      "Available metrics are: loss"):  # fmt: skip
        run_epochs([callbacks.EarlyStopping()], model, [{"loss": 1.0}, {"loss": 2.0}])
    assert model.history.epoch == [0, 1]


def test_early_stopping_restore_best_weights_and_messages(capsys):
    model = FakeModel()
    cb = callbacks.EarlyStopping(patience=1, restore_best_weights=True, verbose=1)

    class Bump(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.bump(epoch + 1)  # weights after epoch e are all e + 1

    run_epochs([Bump(), cb], model, [{"val_loss": v} for v in [1.0, 0.4, 0.6, 0.7, 0.1]])
    assert model.history.epoch == [0, 1, 2]
    assert cb.stopped_epoch == 2 and cb.best_epoch == 1 and cb.best == 0.4
    assert all((w == 2).all() for w in model.weights)
    assert capsys.readouterr().out == (
        "Epoch 3: early stopping\nRestoring model weights from the end of the best epoch: 2.\n"
    )


def test_early_stopping_restores_even_without_stopping():
    model = FakeModel()
    cb = callbacks.EarlyStopping(patience=5, restore_best_weights=True)

    class Bump(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.bump(epoch + 1)

    run_epochs([Bump(), cb], model, [{"val_loss": v} for v in [1.0, 0.4, 0.6]])
    assert model.history.epoch == [0, 1, 2]
    assert all((w == 2).all() for w in model.weights)


def test_early_stopping_reusable_across_fits():
    cb = callbacks.EarlyStopping(patience=1)
    assert stop_epochs(cb, [1.0, 2.0, 3.0])[0] == 2
    assert cb.stopped_epoch == 1
    assert stop_epochs(cb, [5.0, 4.0, 3.0])[0] == 3
    assert cb.stopped_epoch == 0 and cb.best == 3.0


# ---------------------------------------------------------------- ReduceLROnPlateau


def lr_trajectory(cb, values, lr=1.0, key="val_loss"):
    """Learning rate logged at each epoch end, and the final one."""
    model = FakeModel(learning_rate=lr)
    run_epochs([cb], model, [{key: v} for v in values])
    return model.history.history["learning_rate"], model.optimizer.learning_rate


def test_reduce_lr_patience_and_factor():
    logged, final = lr_trajectory(callbacks.ReduceLROnPlateau(patience=2, factor=0.5), [1.0, 1.0, 1.0, 1.0, 1.0])
    # logged before the reduction of the same epoch
    assert logged == [1.0, 1.0, 1.0, 0.5, 0.5] and final == 0.25


def test_reduce_lr_min_delta():
    values = [1.0, 0.99995, 0.9999, 0.99, 0.98]
    logged, _ = lr_trajectory(callbacks.ReduceLROnPlateau(patience=1, factor=0.5), values)
    # 0.99995 improves by less than 1e-4: reduce; 0.9999 improves by 1e-4 exactly: not more than min_delta
    assert logged == [1.0, 1.0, 0.5, 0.25, 0.25]


def test_reduce_lr_cooldown():
    logged, _ = lr_trajectory(callbacks.ReduceLROnPlateau(patience=1, factor=0.5, cooldown=2), [1.0] * 7)
    # reduce at epoch 1; epochs 2-3 cool down (no counting), reduce again at 3, then 5
    assert logged == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_reduce_lr_min_lr():
    logged, final = lr_trajectory(callbacks.ReduceLROnPlateau(patience=0, factor=0.1, min_lr=0.05), [1.0] * 4)
    assert logged == [1.0, 1.0, 0.1, 0.05] and final == 0.05


def test_reduce_lr_max_mode_and_message(capsys):
    cb = callbacks.ReduceLROnPlateau(monitor="val_accuracy", patience=1, factor=0.5, verbose=1)
    logged, final = lr_trajectory(cb, [0.5, 0.6, 0.6], lr=0.01, key="val_accuracy")
    assert final == 0.005
    assert capsys.readouterr().out == "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.005.\n"


def test_reduce_lr_rejects_factor_ge_1_and_warns_on_missing_metric():
    with pytest.raises(ValueError, match="does not support a factor >= 1.0. Received factor=1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)
    with pytest.warns(UserWarning, match="Learning rate reduction is conditioned on metric `val_loss`"):
        run_epochs([callbacks.ReduceLROnPlateau()], FakeModel(), [{"loss": 1.0}])


def test_reduce_lr_numpy_learning_rate():
    model = FakeModel(learning_rate=np.float32(0.1))
    run_epochs([callbacks.ReduceLROnPlateau(monitor="loss", patience=0)], model, [{"loss": 1.0}, {"loss": 1.0}])
    assert model.history.history["learning_rate"] == [pytest.approx(0.1), pytest.approx(0.1)]
    assert model.optimizer.learning_rate == pytest.approx(0.01)


# ---------------------------------------------------------------- LearningRateScheduler


def test_learning_rate_scheduler(capsys):
    model = FakeModel(learning_rate=1.0)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5

    run_epochs([callbacks.LearningRateScheduler(schedule, verbose=1)], model, [{"loss": 1.0}] * 3)
    assert seen == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert model.history.history["learning_rate"] == [0.5, 0.25, 0.125]
    assert capsys.readouterr().out == "".join(
        f"\nEpoch {e}: LearningRateScheduler setting learning rate to {lr}.\n"
        for e, lr in [(1, 0.5), (2, 0.25), (3, 0.125)]
    )


def test_learning_rate_scheduler_one_argument_and_type_check():
    model = FakeModel()
    run_epochs([callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], model, [{"loss": 1.0}] * 2)
    assert model.history.history["learning_rate"] == [0.1, 0.05]
    with pytest.raises(ValueError, match="should be a float. Got: 1"):
        run_epochs([callbacks.LearningRateScheduler(lambda epoch, lr: 1)], FakeModel(), [{"loss": 1.0}])
    model = FakeModel()
    run_epochs([callbacks.LearningRateScheduler(lambda epoch, lr: np.float32(0.5))], model, [{"loss": 1.0}])
    assert model.optimizer.learning_rate == 0.5


# ---------------------------------------------------------------- TerminateOnNaN


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_terminate_on_nan(bad, capsys):
    model = FakeModel()
    batch_logs = {(0, 0): {"loss": 1.0}, (0, 1): {"loss": bad}, (0, 2): {"loss": 1.0}}
    run_epochs([callbacks.TerminateOnNaN()], model, [{"loss": 1.0}, {"loss": 1.0}], steps=3, batch_logs=batch_logs)
    assert model.stop_training is True
    assert model.history.epoch == [0]
    assert capsys.readouterr().out == "Batch 1: Invalid loss, terminating training\n"


def test_terminate_on_nan_raise_error():
    cb = callbacks.TerminateOnNaN(raise_error=True)
    cb.set_model(FakeModel())
    cb.on_train_batch_end(0, {"loss": 1.0})
    cb.on_train_batch_end(1, {})
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 3. Loss value: nan. Terminating"):
        cb.on_train_batch_end(3, {"loss": float("nan")})


# ---------------------------------------------------------------- CSVLogger


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_csv_logger_columns_and_values(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": 0.5, "acc": 1 / 3}, {"loss": 0.25, "acc": 0.5, "extra": 1.0}]
    run_epochs([callbacks.CSVLogger(path)], FakeModel(), logs)
    # sorted keys, val_* columns added (NA) when the first epoch has none, full-precision floats, \r\n
    assert read_bytes(path) == (
        b"epoch,acc,loss,val_acc,val_loss\r\n0,0.3333333333333333,0.5,NA,NA\r\n1,0.5,0.25,NA,NA\r\n"
    )


def test_csv_logger_with_validation_separator_and_append(tmp_path):
    path = str(tmp_path / "log.tsv")
    run_epochs([callbacks.CSVLogger(path, separator="\t")], FakeModel(), [{"loss": 1.0, "val_loss": 2.0}])
    run_epochs([callbacks.CSVLogger(path, separator="\t", append=True)], FakeModel(), [{"loss": 3.0, "val_loss": 4.0}])
    assert read_bytes(path) == b"epoch\tloss\tval_loss\r\n0\t1.0\t2.0\r\n0\t3.0\t4.0\r\n"
    # append to an empty file writes the header
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    run_epochs([callbacks.CSVLogger(empty, append=True)], FakeModel(), [{"loss": 1.0}])
    assert read_bytes(empty) == b"epoch,loss,val_loss\r\n0,1.0,NA\r\n"
    # append=False truncates
    run_epochs([callbacks.CSVLogger(path)], FakeModel(), [{"loss": 5.0}])
    assert read_bytes(path) == b"epoch,loss,val_loss\r\n0,5.0,NA\r\n"


def test_csv_logger_flushes_every_epoch_and_formats_lists(tmp_path):
    path = tmp_path / "log.csv"
    cb = callbacks.CSVLogger(path)
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0, "per_class": [0.5, 0.25], "note": "x"})
    # readable before training ends
    assert (
        read_bytes(path)
        == b'epoch,loss,note,per_class,val_loss,val_note,val_per_class\r\n0,1.0,x,"""[0.5, 0.25]""",NA,NA,NA\r\n'
    )
    cb.on_train_end()
    assert cb.csv_file.closed


# ---------------------------------------------------------------- LambdaCallback


def test_lambda_callback():
    events = []
    cb = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: events.append(("eb", epoch)),
        on_epoch_end=lambda epoch, logs: events.append(("ee", epoch, logs["loss"])),
        on_train_begin=lambda logs: events.append("tb"),
        on_train_end=lambda logs: events.append("te"),
        on_train_batch_begin=lambda batch, logs: events.append(("bb", batch)),
        on_train_batch_end=lambda batch, logs: events.append(("be", batch)),
        on_test_begin=lambda logs: events.append("test"),
    )
    run_epochs([cb], FakeModel(), [{"loss": 1.0}], steps=2)
    assert events == ["tb", ("eb", 0), ("bb", 0), ("be", 0), ("bb", 1), ("be", 1), ("ee", 0, 1.0), "te"]
    cb.on_test_begin({})
    assert events[-1] == "test"
    # hooks not given stay no-ops
    callbacks.LambdaCallback().on_epoch_end(0, {})


# ---------------------------------------------------------------- ModelCheckpoint


def files(folder):
    return sorted(os.listdir(folder))


def test_checkpoint_filenames_from_epoch_and_logs(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "weights.{epoch:02d}-{val_loss:.2f}.keras")
    run_epochs([callbacks.ModelCheckpoint(path)], model, [{"loss": 1.0, "val_loss": v} for v in [0.5, 0.25, 0.75]])
    assert files(tmp_path) == ["weights.01-0.50.keras", "weights.02-0.25.keras", "weights.03-0.75.keras"]
    assert read_bytes(tmp_path / "weights.02-0.25.keras") == b"model"
    # each save went to a hidden temporary file in the same folder, keeping the extension
    for method, saved in model.saved:
        assert method == "save"
        assert os.path.dirname(saved) == str(tmp_path)
        assert os.path.basename(saved).startswith(".irtool-") and saved.endswith(".keras")


def test_checkpoint_save_best_only_and_messages(tmp_path, capsys):
    model = FakeModel()
    path = str(tmp_path / "best.keras")
    cb = callbacks.ModelCheckpoint(path, save_best_only=True, verbose=1)
    run_epochs([cb], model, [{"val_loss": v} for v in [0.30258, 0.14464, 0.2]])
    assert len(model.saved) == 2 and files(tmp_path) == ["best.keras"]
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_loss improved from None to 0.30258, saving model to {path}\n"
        f"\nEpoch 1: finished saving model to {path}\n"
        f"\nEpoch 2: val_loss improved from 0.30258 to 0.14464, saving model to {path}\n"
        f"\nEpoch 2: finished saving model to {path}\n"
        "\nEpoch 3: val_loss did not improve from 0.14464\n"
    )


def test_checkpoint_save_every_epoch_message(tmp_path, capsys):
    path = str(tmp_path / "ck_{epoch:02d}.keras")
    run_epochs([callbacks.ModelCheckpoint(path, verbose=1)], FakeModel(), [{"loss": 1.0}])
    p = str(tmp_path / "ck_01.keras")
    assert capsys.readouterr().out == f"\nEpoch 1: saving model to {p}\n\nEpoch 1: finished saving model to {p}\n"


def test_checkpoint_max_mode_threshold_and_weights_only(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "ck{epoch}.weights.h5")
    cb = callbacks.ModelCheckpoint(
        path, monitor="val_acc", mode="max", save_best_only=True, save_weights_only=True, initial_value_threshold=0.55
    )
    run_epochs([cb], model, [{"val_acc": v} for v in [0.5, 0.6, 0.58, 0.7]])
    assert files(tmp_path) == ["ck2.weights.h5", "ck4.weights.h5"]
    assert [m for m, _ in model.saved] == ["save_weights", "save_weights"]


def test_checkpoint_missing_monitor_saves_with_warning(tmp_path):
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available."):
        run_epochs([callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_best_only=True)], FakeModel(), [{}])
    assert files(tmp_path) == ["m.keras"]


def test_checkpoint_failed_save_leaves_no_partial_file(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "model.keras")
    cb = callbacks.ModelCheckpoint(path)
    run_epochs([cb], model, [{"loss": 1.0}])
    assert read_bytes(path) == b"model"
    model.payload = b"new model bytes"
    model.fail = OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        run_epochs([cb], model, [{"loss": 1.0}])
    # the previous checkpoint is intact and no temporary file is left behind
    assert files(tmp_path) == ["model.keras"]
    assert read_bytes(path) == b"model"
    # a first save that fails leaves nothing at all
    other = tmp_path / "sub"
    with pytest.raises(OSError):
        run_epochs([callbacks.ModelCheckpoint(str(other / "m.keras"))], model, [{"loss": 1.0}])
    assert files(other) == []


def test_checkpoint_save_that_writes_nothing(tmp_path):
    model = FakeModel()
    model.save = lambda filepath, **kwargs: None
    with pytest.raises(FileNotFoundError, match="wrote nothing"):
        run_epochs([callbacks.ModelCheckpoint(str(tmp_path / "m.keras"))], model, [{"loss": 1.0}])
    assert files(tmp_path) == []


def test_checkpoint_batch_frequency(tmp_path):
    model = FakeModel()
    path = str(tmp_path / "e{epoch}b{batch}.keras")
    run_epochs([callbacks.ModelCheckpoint(path, save_freq=2)], model, [{"loss": 1.0}] * 2, steps=3)
    # batches 1..3 of each epoch; saving every 2 batches seen, counted across epochs
    assert files(tmp_path) == ["e1b2.keras", "e2b1.keras", "e2b3.keras"]


def test_checkpoint_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="must end in `.keras`"):
        callbacks.ModelCheckpoint("model.onnx")
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        callbacks.ModelCheckpoint("model.keras", save_weights_only=True)
    with pytest.raises(ValueError, match="Unrecognized save_freq: batch"):
        callbacks.ModelCheckpoint("model.keras", save_freq="batch")
    callbacks.ModelCheckpoint("model.h5")
    with pytest.raises(KeyError, match='Failed to format this callback filepath: "{nope}.keras"'):
        run_epochs([callbacks.ModelCheckpoint("{nope}.keras")], FakeModel(), [{"loss": 1.0}])
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(OSError, match="Please specify a non-directory filepath"):
        run_epochs([callbacks.ModelCheckpoint(str(tmp_path / "dir.keras"))], FakeModel(), [{"loss": 1.0}])


def test_checkpoint_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "m.keras"
    run_epochs([callbacks.ModelCheckpoint(path)], FakeModel(), [{"loss": 1.0}])
    assert read_bytes(path) == b"model"


def test_no_warnings_in_normal_runs(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_epochs(
            [
                callbacks.EarlyStopping(monitor="loss"),
                callbacks.ReduceLROnPlateau(monitor="loss"),
                callbacks.CSVLogger(tmp_path / "a.csv"),
                callbacks.ModelCheckpoint(tmp_path / "m.keras", monitor="loss", save_best_only=True),
                callbacks.TerminateOnNaN(),
            ],
            FakeModel(),
            [{"loss": 1.0 / (e + 1)} for e in range(3)],
        )
    header, *rows = (tmp_path / "a.csv").read_text().splitlines()
    assert header == "epoch,learning_rate,loss,val_learning_rate,val_loss"
    assert math.isclose(float(rows[-1].split(",")[2]), 1 / 3)
