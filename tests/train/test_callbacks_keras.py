"""Keras parity: the same hook sequence, logs and clock through Keras' callbacks and ours give the same text,
history, files and model state.

Keras always emits ANSI codes; ours only on a terminal or with ``ansi=True``. So the Progbar is compared
byte for byte with ``ansi=True`` and with Keras' text stripped of its escape codes otherwise.
"""

import os
import re
import time

import numpy as np
import pytest

from ..harness import require_keras

real = require_keras()  # selects Keras' backend before keras.src is imported below
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from keras.src.utils.progbar import Progbar as KerasProgbar  # noqa: E402

import irtool.callbacks as ours  # noqa: E402
from irtool.train import progbar as progbar_module  # noqa: E402
from irtool.train.progbar import Progbar  # noqa: E402

from ._fakes import FakeModel  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text):
    return ANSI.sub("", text)


def use_clock(monkeypatch, step=0.25, start=1000.0):
    """Patch ``time.time`` (used by both progress bars) to advance ``step`` s per reading."""
    state = {"t": start}

    def now():
        state["t"] += step
        return state["t"]

    monkeypatch.setattr(time, "time", now)


# ---------------------------------------------------------------- Progbar

SEQUENCES = {
    "averaged": (
        [0.0, 0.3, 0.9, 1.4, 2.0, 3.1],
        [
            (1, [("loss", 0.5), ("acc", 0.0001)], None),
            (2, [("loss", 0.4), ("acc", -0.2)], None),
            (3, [("loss", 0.3), ("acc", 0.3)], None),
            (4, [("loss", 0.2), ("acc", 0.4)], None),
            (4, [("loss", 0.25), ("acc", -0.0001)], True),
        ],
    ),
    "throttled": (
        [0.0, 1.0, 1.01, 1.02, 1.5, 1.51],
        [(1, [("x", 1.0)], None), (2, [("x", 2.0)], None), (3, [("x", 1e-5)], None), (5, None, None), (6, None, None)],
    ),
    "long": (
        [0.0, 65.0, 130.0, 4000.0],
        [(1, [("m", 123.456)], None), (2, [("m", -7.0)], None), (3, [("m", np.float32(0.1))], None)],
    ),
}


@pytest.mark.parametrize("target", [4, 6, 1000, None])
@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("metrics", [{}, {"stateful_metrics": ["loss", "x"]}, {"stateless_metrics": set()}])
@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_progbar_text_matches_keras(capsys, monkeypatch, name, metrics, verbose, target):
    times, updates = SEQUENCES[name]

    def drive(cls, **kwargs):
        clock = iter(times)
        monkeypatch.setattr(time, "time", lambda: next(clock))
        bar = cls(target, verbose=verbose, **metrics, **kwargs)
        for current, values, finalize in updates:
            bar.update(current, values, finalize=finalize)
        return capsys.readouterr().out

    want = drive(KerasProgbar)
    assert drive(Progbar, ansi=True) == want
    assert drive(Progbar) == strip_ansi(want)


# ---------------------------------------------------------------- callbacks through CallbackList


def make_list(module, callbacks, model, add_history, **params):
    cbs = module.CallbackList(
        callbacks, add_history=add_history, add_progbar=params["verbose"] != 0, model=model, **params
    )
    # Keras dispatches batch hooks to a thread pool when it can; keep it synchronous so the clock is shared
    # deterministically (irtool is always synchronous).
    for flag in ("_async_train", "_async_test", "_async_predict"):
        if hasattr(cbs, flag):
            setattr(cbs, flag, False)
    return cbs


def fit(module, make_callbacks, epoch_logs, batch_logs, val_logs=None, verbose=1, steps=3, val_steps=2, bump=True):
    """fit's hook sequence (Keras' torch trainer) with validation through the same CallbackList."""
    model = FakeModel(learning_rate=0.5)
    callbacks = make_callbacks(module)
    cbs = make_list(module, callbacks, model, True, verbose=verbose, epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    training_logs = {}
    cbs.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        if bump:
            model.bump(epoch + 1)
        cbs.on_epoch_begin(epoch)
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            cbs.on_train_batch_end(step, batch_logs(epoch, step))
            if model.stop_training:
                break
        logs = dict(logs)
        if val_logs is not None:
            cbs.on_test_begin()
            for step in range(val_steps):
                cbs.on_test_batch_begin(step)
                cbs.on_test_batch_end(step, {"loss": 9.0 + step})
            cbs.on_test_end(val_logs[epoch])
            logs.update({f"val_{k}": v for k, v in val_logs[epoch].items()})
        cbs.on_epoch_end(epoch, logs)
        training_logs = logs
        if model.stop_training:
            break
    cbs.on_train_end(logs=training_logs)
    return model, callbacks


def run_both(capsys, monkeypatch, tmp_path, scenario):
    """Run ``scenario(module)`` for Keras then irtool, each in a fresh folder and clock."""
    results = []
    for name, module in (("keras", real.callbacks), ("irtool", ours)):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        use_clock(monkeypatch)
        model, callbacks = scenario(module)
        out = capsys.readouterr().out
        files = {}
        for root, _, names in os.walk(folder):
            for file in names:
                with open(os.path.join(root, file), "rb") as f:
                    files[os.path.relpath(os.path.join(root, file), folder)] = f.read()
        results.append((out, model, callbacks, files))
    return results


def batch_logs(epoch, step):
    return {"loss": 1.0 / (epoch + step + 1), "accuracy": 0.1 * step, "mae": 1e-4 * (epoch + 1)}


EPOCH_LOGS = [{"loss": 0.9 - 0.1 * e, "accuracy": 0.5 + 0.01 * e, "mae": 0.0005} for e in range(6)]
VAL_LOGS = [{"loss": v, "accuracy": 0.6} for v in [0.8, 0.5, 0.6, 0.7, 0.4, 0.45]]


def monitor_callbacks(module):
    return [
        module.EarlyStopping(patience=2, verbose=1, restore_best_weights=True),
        module.ReduceLROnPlateau(patience=1, factor=0.5, verbose=1, min_lr=0.1),
        module.ModelCheckpoint("ck/best_{epoch:02d}.keras", save_best_only=True, verbose=1),
        module.ModelCheckpoint("all/{epoch}-{val_loss:.2f}.weights.h5", save_weights_only=True, verbose=1),
        module.CSVLogger("log.csv"),
        module.TerminateOnNaN(),
    ]


def assert_same(results):
    (k_out, k_model, _, k_files), (o_out, o_model, _, o_files) = results
    assert o_out == strip_ansi(k_out)
    assert o_model.history.history == k_model.history.history
    assert o_model.history.epoch == k_model.history.epoch
    assert o_model.history.params == k_model.history.params
    assert o_model.stop_training == k_model.stop_training
    assert o_model.optimizer.learning_rate == k_model.optimizer.learning_rate
    for a, b in zip(o_model.get_weights(), k_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # irtool saves to ".irtool-<pid>-<random>.<name>" beside the target, then renames
    assert [os.path.basename(p) for _, p in k_model.saved] == [
        re.sub(r"^\.irtool-\d+-[0-9a-f]{12}\.", "", os.path.basename(p)) for _, p in o_model.saved
    ]
    assert o_files == k_files


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_fit_with_monitoring_callbacks(capsys, monkeypatch, tmp_path, verbose):
    results = run_both(
        capsys,
        monkeypatch,
        tmp_path,
        lambda m: fit(m, monitor_callbacks, EPOCH_LOGS, batch_logs, VAL_LOGS, verbose=verbose),
    )
    assert_same(results)
    out, model, callbacks, files = results[1]
    assert callbacks[0].stopped_epoch == 3  # the scenario does stop early
    assert sorted(files) == ["all/1-0.80.weights.h5", "all/2-0.50.weights.h5", "all/3-0.60.weights.h5",
                             "all/4-0.70.weights.h5", "ck/best_01.keras", "ck/best_02.keras", "log.csv"]  # fmt: skip


def test_fit_single_epoch_and_max_mode(capsys, monkeypatch, tmp_path):
    def callbacks(module):
        return [
            module.EarlyStopping(monitor="val_accuracy", mode="max", verbose=1, baseline=0.7, patience=1),
            module.ModelCheckpoint("m.keras", monitor="accuracy", mode="max", save_best_only=True, verbose=1),
        ]

    assert_same(
        run_both(capsys, monkeypatch, tmp_path, lambda m: fit(m, callbacks, EPOCH_LOGS[:1], batch_logs, VAL_LOGS))
    )
    assert_same(
        run_both(capsys, monkeypatch, tmp_path / "b", lambda m: fit(m, callbacks, EPOCH_LOGS, batch_logs, VAL_LOGS))
    )


def test_fit_learning_rate_scheduler_and_nan(capsys, monkeypatch, tmp_path):
    def nan_batches(epoch, step):
        return {"loss": float("nan") if (epoch, step) == (2, 1) else 0.5}

    def callbacks(module):
        return [
            module.LearningRateScheduler(lambda epoch, lr: lr * 0.9 if epoch else lr, verbose=1),
            module.TerminateOnNaN(),
            module.CSVLogger("log.tsv", separator="\t"),
        ]

    assert_same(run_both(capsys, monkeypatch, tmp_path, lambda m: fit(m, callbacks, EPOCH_LOGS, nan_batches)))


def test_csv_logger_append(capsys, monkeypatch, tmp_path):
    def twice(module):
        fit(module, lambda m: [m.CSVLogger("log.csv", append=True)], EPOCH_LOGS[:2], batch_logs, verbose=0)
        return fit(module, lambda m: [m.CSVLogger("log.csv", append=True)], EPOCH_LOGS[:1], batch_logs, VAL_LOGS)

    assert_same(run_both(capsys, monkeypatch, tmp_path, twice))


def test_checkpoint_every_n_batches(capsys, monkeypatch, tmp_path):
    def callbacks(module):
        return [module.ModelCheckpoint("b/{epoch}_{batch}.keras", save_freq=2, verbose=1)]

    assert_same(run_both(capsys, monkeypatch, tmp_path, lambda m: fit(m, callbacks, EPOCH_LOGS[:3], batch_logs)))


@pytest.mark.parametrize("verbose", ["auto", 1, 2])
@pytest.mark.parametrize("steps", [5, None])
def test_evaluate_and_predict_progress(capsys, monkeypatch, tmp_path, verbose, steps):
    def evaluate_then_predict(module):
        model = FakeModel()
        cbs = make_list(module, [], model, False, verbose=verbose, epochs=1, steps=steps)
        cbs.on_test_begin()
        for step in range(5):
            cbs.on_test_batch_begin(step)
            cbs.on_test_batch_end(step, {"loss": 0.2 * step, "compile_metrics": 0.001 * step})
        cbs.on_test_end({"loss": 0.1233, "compile_metrics": 0.0004})
        cbs = make_list(module, [], model, False, verbose=verbose, epochs=1, steps=steps)
        cbs.on_predict_begin()
        for step in range(5):
            cbs.on_predict_batch_begin(step)
            cbs.on_predict_batch_end(step, {"outputs": np.zeros((2, 3))})
        cbs.on_predict_end()
        return model, []

    (k_out, *_), (o_out, *_) = run_both(capsys, monkeypatch, tmp_path, evaluate_then_predict)
    assert o_out == strip_ansi(k_out)
    assert o_out


def test_progbar_logger_with_ansi_is_byte_identical(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(progbar_module, "_is_tty", lambda: True)
    (k_out, *_), (o_out, *_) = run_both(
        capsys, monkeypatch, tmp_path, lambda m: fit(m, monitor_callbacks, EPOCH_LOGS, batch_logs, VAL_LOGS)
    )
    assert "\x1b[32m" in o_out
    assert o_out == k_out


def test_learning_rate_callbacks_with_real_optimizers(capsys, monkeypatch, tmp_path):
    """float32 learning-rate variables: the printed and logged rates carry the same float32 rounding."""
    optimizers = pytest.importorskip("irtool.train.optimizers")

    def scenario(module):
        def with_optimizer(model):
            model.optimizer = (real.optimizers if module is real.callbacks else optimizers).SGD(learning_rate=0.05)
            return model

        callbacks = [
            module.LearningRateScheduler(lambda epoch, lr: lr * 0.7 if epoch == 1 else lr, verbose=1),
            module.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.3, verbose=1),
        ]
        model = with_optimizer(FakeModel())
        cbs = make_list(module, callbacks, model, True, verbose=0, epochs=4, steps=1)
        cbs.on_train_begin()
        for epoch in range(4):
            cbs.on_epoch_begin(epoch)
            cbs.on_epoch_end(epoch, {"loss": 1.0})
        cbs.on_train_end()
        return model, callbacks

    (k_out, k_model, *_), (o_out, o_model, *_) = run_both(capsys, monkeypatch, tmp_path, scenario)
    assert "0.0" in o_out and o_out == k_out
    assert o_model.history.history == k_model.history.history
    assert float(np.asarray(o_model.optimizer.learning_rate)) == float(
        real.ops.convert_to_numpy(k_model.optimizer.learning_rate)
    )
