"""Keras 3's callbacks (``keras.callbacks``) for the NumPy trainer.

Each class follows its namesake in ``keras/src/callbacks/`` (arguments, defaults, state, printed messages
and warnings). The training loops call the hooks exactly as Keras 3's trainers do::

    # fit
    cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                       verbose=verbose, epochs=epochs, steps=steps_per_epoch)     # steps None if unknown
    model.stop_training = False
    cbs.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        cbs.on_epoch_begin(epoch)
        for step, batch in enumerate(batches):
            cbs.on_train_batch_begin(step)
            logs = train_step(batch)                  # running epoch results so far
            cbs.on_train_batch_end(step, logs)
            if model.stop_training: break
        epoch_logs = dict(metric_results)
        if validating this epoch:                     # evaluate(..., callbacks=cbs, return_dict=True)
            val = evaluate(val_data, callbacks=cbs)   # same list: ProgbarLogger stays silent in fit
            epoch_logs.update({"val_" + k: v for k, v in val.items()})
        cbs.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if model.stop_training: break
    cbs.on_train_end(logs=training_logs)
    return model.history                              # the History (CallbackList sets model.history)

    # evaluate (a CallbackList is built only when `callbacks` is not one already)
    cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1, steps=steps)
    cbs.on_test_begin(); model.reset_metrics()
    for step, batch: cbs.on_test_batch_begin(step); logs = test_step(batch); cbs.on_test_batch_end(step, logs)
    cbs.on_test_end(pythonify_logs(metric_results))

    # predict
    cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1, steps=steps)
    cbs.on_predict_begin()
    for step, batch: cbs.on_predict_batch_begin(step); out = ...; cbs.on_predict_batch_end(step, {"outputs": out})
    cbs.on_predict_end()

``ModelCheckpoint`` writes through a temporary file in the target folder and ``os.replace``.
"""

from __future__ import annotations

import collections
import csv
import os
import warnings

import numpy as np

from irtool.atomic import replacing
from irtool.train.progbar import Progbar, print_msg

__all__ = [
    "Callback",
    "CallbackList",
    "CSVLogger",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "pythonify_logs",
]


def pythonify_logs(logs) -> dict:
    """Keras' ``python_utils.pythonify_logs``: sort by key, flatten nested dicts, scalars to ``float``.

    Values that are not scalars (a batch of predictions) are passed through unchanged.
    """
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(pythonify_logs(value))
            continue
        if _is_scalar(value):
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        result[key] = value
    return result


def _is_scalar(value) -> bool:
    if isinstance(value, (bool, int, float, np.generic)):
        return True
    ndim = getattr(value, "ndim", None)
    return ndim == 0


def _to_float(value) -> float:
    """A learning rate (float, NumPy scalar, 0-d array or variable with ``numpy()``/``__array__``) as float."""
    if hasattr(value, "numpy") and not isinstance(value, np.generic):
        value = value.numpy()
    return float(np.asarray(value))


class Callback:
    """Base class of callbacks (``keras.callbacks.Callback``).

    Attributes:
        params: Dict of training parameters (``verbose``, ``epochs``, ``steps``).
        model: The model being trained, evaluated or used for prediction.
    """

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch, logs=None):
        """A backwards compatibility alias for ``on_train_batch_begin``."""

    def on_batch_end(self, batch, logs=None):
        """A backwards compatibility alias for ``on_train_batch_end``."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of an epoch (training only)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of an epoch with the epoch's metric results (and ``val_*`` ones)."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called at the beginning of a training batch in ``fit``."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called at the end of a training batch in ``fit`` with the running metric results."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called at the beginning of a batch in ``evaluate`` (and in ``fit``'s validation)."""

    def on_test_batch_end(self, batch, logs=None):
        """Called at the end of a batch in ``evaluate`` (and in ``fit``'s validation)."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called at the beginning of a batch in ``predict``."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called at the end of a batch in ``predict`` with ``{"outputs": batch_outputs}``."""

    def on_train_begin(self, logs=None):
        """Called at the beginning of training."""

    def on_train_end(self, logs=None):
        """Called at the end of training with the last epoch's logs."""

    def on_test_begin(self, logs=None):
        """Called at the beginning of evaluation or validation."""

    def on_test_end(self, logs=None):
        """Called at the end of evaluation or validation with its results."""

    def on_predict_begin(self, logs=None):
        """Called at the beginning of prediction."""

    def on_predict_end(self, logs=None):
        """Called at the end of prediction."""


def _flatten_callbacks(callbacks) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    flat = []
    for item in callbacks:
        flat.extend(_flatten_callbacks(item) if isinstance(item, (list, tuple)) else [item])
    return flat


class CallbackList(Callback):
    """Calls a list of callbacks together (``keras.callbacks.CallbackList``).

    Args:
        callbacks: List of ``Callback`` instances.
        add_history: Append a ``History`` unless the list already has one.
        add_progbar: Append a ``ProgbarLogger`` unless the list already has one.
        model: The model the callbacks are used with (``model.history`` is set to the ``History``).
        **params: Passed to every callback's ``set_params`` (``verbose``, ``epochs``, ``steps``).

    Every hook passes the logs through ``pythonify_logs`` (sorted keys, floats) once and hands the
    same dict to each callback in order, so a callback may add entries (``learning_rate``) that the
    later ones (``History``, ``ProgbarLogger``) see. Dispatch is synchronous.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = _flatten_callbacks(callbacks)
        self._in_begin_end_block_count = 0
        self._add_default_callbacks(add_history, add_progbar)
        self.set_model(model)
        self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def _add_default_callbacks(self, add_history, add_progbar):
        self._progbar = None
        self._history = None
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                self._progbar = cb
            elif isinstance(cb, History):
                self._history = cb
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    def _on_begin(self):
        self._in_begin_end_block_count += 1

    def _on_end(self):
        self._in_begin_end_block_count -= 1
        if self._in_begin_end_block_count < 0:
            raise ValueError("`on_xxx_end` called without corresponding `on_xxx_begin`")

    def _dispatch(self, hook, *args, **kwargs):
        for callback in self.callbacks:
            getattr(callback, hook)(*args, **kwargs)

    def on_batch_begin(self, batch, logs=None):
        self._dispatch("on_batch_begin", batch, logs=pythonify_logs(logs))

    def on_batch_end(self, batch, logs=None):
        self._dispatch("on_batch_end", batch, logs=pythonify_logs(logs))

    def on_epoch_begin(self, epoch, logs=None):
        self._dispatch("on_epoch_begin", epoch, pythonify_logs(logs))

    def on_epoch_end(self, epoch, logs=None):
        self._dispatch("on_epoch_end", epoch, pythonify_logs(logs))

    def on_train_batch_begin(self, batch, logs=None):
        self._dispatch("on_train_batch_begin", batch, logs=pythonify_logs(logs))

    def on_train_batch_end(self, batch, logs=None):
        self._dispatch("on_train_batch_end", batch, logs=pythonify_logs(logs))

    def on_test_batch_begin(self, batch, logs=None):
        self._dispatch("on_test_batch_begin", batch, logs=pythonify_logs(logs))

    def on_test_batch_end(self, batch, logs=None):
        self._dispatch("on_test_batch_end", batch, logs=pythonify_logs(logs))

    def on_predict_batch_begin(self, batch, logs=None):
        self._dispatch("on_predict_batch_begin", batch, logs=pythonify_logs(logs))

    def on_predict_batch_end(self, batch, logs=None):
        self._dispatch("on_predict_batch_end", batch, logs=pythonify_logs(logs))

    def on_train_begin(self, logs=None):
        self._on_begin()
        self._dispatch("on_train_begin", pythonify_logs(logs))

    def on_train_end(self, logs=None):
        self._dispatch("on_train_end", pythonify_logs(logs))
        self._on_end()

    def on_test_begin(self, logs=None):
        self._on_begin()
        self._dispatch("on_test_begin", pythonify_logs(logs))

    def on_test_end(self, logs=None):
        self._dispatch("on_test_end", pythonify_logs(logs))
        self._on_end()

    def on_predict_begin(self, logs=None):
        self._on_begin()
        self._dispatch("on_predict_begin", pythonify_logs(logs))

    def on_predict_end(self, logs=None):
        self._dispatch("on_predict_end", pythonify_logs(logs))
        self._on_end()


class History(Callback):
    """Records every epoch's logs: ``history.history[name]`` is a list per epoch, ``history.epoch`` the
    epoch indices, ``history.params`` the training parameters. Added by ``fit``, which returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints the progress bar and metrics to stdout (added by ``fit``/``evaluate``/``predict`` when
    ``verbose != 0``). ``Epoch e/E`` is printed only when ``epochs > 1``; validation inside ``fit`` is
    silent and its ``val_*`` results appear on the epoch's final line."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params["verbose"]
        if verbose == "auto":
            verbose = 1
        self.verbose = verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step", stateless_metrics=set())

    def _update_progbar(self, batch, logs=None):
        logs = logs or {}
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list(logs.items()), finalize=False)

    def _finalize_progbar(self, logs):
        logs = logs or {}
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list(logs.items()), finalize=True)


# Metric names whose direction Keras knows from the metric object (``_direction``); used only when the
# model's metrics do not say.
_UP_METRICS = frozenset(
    "accuracy acc binary_accuracy categorical_accuracy sparse_categorical_accuracy "
    "top_k_categorical_accuracy sparse_top_k_categorical_accuracy auc precision recall f1_score "
    "fbeta_score r2_score cosine_similarity".split()
)
_DOWN_METRICS = frozenset(
    "mean_squared_error mse mean_absolute_error mae mean_absolute_percentage_error mape "
    "mean_squared_logarithmic_error msle root_mean_squared_error log_cosh_error hinge squared_hinge "
    "categorical_hinge binary_crossentropy categorical_crossentropy sparse_categorical_crossentropy "
    "kl_divergence poisson".split()
)


def _model_metrics(model) -> list:
    """The model's metric objects, looking inside containers (objects with a ``metrics`` list)."""
    found = []
    try:
        stack = list(getattr(model, "metrics", None) or [])
    except Exception:  # a model whose metrics are not built yet
        stack = []
    while stack:
        m = stack.pop(0)
        inner = getattr(m, "metrics", None)
        if isinstance(inner, (list, tuple)) and not hasattr(m, "_direction"):
            stack[:0] = list(inner)
        else:
            found.append(m)
    return found


class MonitorCallback(Callback):
    """Base of the callbacks that watch a metric and decide whether it improved (``mode`` and ``min_delta``)."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ["auto", "min", "max"]:
            warnings.warn(f"{self.__class__.__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name == "loss":
                self.monitor_op = np.less
            for m in _model_metrics(self.model):
                if getattr(m, "name", None) == metric_name and hasattr(m, "_direction"):
                    self.monitor_op = np.greater if m._direction == "up" else np.less
            if self.monitor_op is None:
                if metric_name in _UP_METRICS:
                    self.monitor_op = np.greater
                elif metric_name in _DOWN_METRICS or metric_name.endswith("_loss"):
                    self.monitor_op = np.less
            if self.monitor_op is None:
                raise ValueError(
                    f"{self.__class__.__name__} callback received "
                    f"monitor={self.monitor}, but Keras isn't able to "
                    "automatically determine whether that metric should be "
                    "maximized or minimized. Pass `mode='max'` in order to "
                    "monitor based on the highest metric value, or pass "
                    "`mode='min'` in order to use the lowest value."
                )
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored metric has stopped improving (``keras.callbacks.EarlyStopping``).

    Training stops (``model.stop_training = True``) at the end of an epoch ``> 0`` once ``patience``
    epochs have passed without an improvement of more than ``min_delta`` (and, with ``baseline``, without
    beating it). Epochs before ``start_from_epoch`` are not monitored. ``restore_best_weights`` sets the
    best epoch's weights back at the end of training.
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_msg(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        monitor_value = logs.get(self.monitor)
        if monitor_value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(list(logs.keys()))}",
                stacklevel=2,
            )
        return monitor_value


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement
    (``keras.callbacks.ReduceLROnPlateau``). Adds ``learning_rate`` to every epoch's logs."""

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
        **kwargs,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def _reduce_optimizer_lr(self, optimizer, epoch, name=""):
        old_lr = _to_float(optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                name_str = f" {name}" if name else ""
                print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{name_str} learning rate to {new_lr}.")
            return True
        return False

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        optimizer = self.model.optimizer
        if hasattr(optimizer, "optimizers"):
            for opt in optimizer.optimizers:
                logs[f"learning_rate_{opt.name}"] = _to_float(opt.learning_rate)
        else:
            logs["learning_rate"] = _to_float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(list(logs.keys()))}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                reduced = False
                if hasattr(optimizer, "optimizers"):
                    for opt in optimizer.optimizers:
                        if self._reduce_optimizer_lr(opt, epoch, f"{opt.name}"):
                            reduced = True
                elif self._reduce_optimizer_lr(optimizer, epoch):
                    reduced = True
                if reduced:
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _update_optimizer_lr(self, optimizer, epoch):
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            learning_rate = self.schedule(epoch, _to_float(optimizer.learning_rate))
        except TypeError:
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        return learning_rate

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if hasattr(optimizer, "optimizers"):
            for opt in optimizer.optimizers:
                learning_rate = self._update_optimizer_lr(opt, epoch)
                if self.verbose > 0:
                    print_msg(
                        f"\nEpoch {epoch + 1}: LearningRateScheduler setting {opt.name} learning rate to {learning_rate}."
                    )
        else:
            learning_rate = self._update_optimizer_lr(optimizer, epoch)
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        optimizer = self.model.optimizer
        if hasattr(optimizer, "optimizers"):
            for opt in optimizer.optimizers:
                logs[f"learning_rate_{opt.name}"] = _to_float(opt.learning_rate)
        else:
            logs["learning_rate"] = _to_float(optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training when a batch's ``loss`` is NaN or infinite (``raise_error=True``: raise ``RuntimeError``)."""

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(
                    f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating training immediately."
                )
            print_msg(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Stream epoch results to a CSV file (``keras.callbacks.CSVLogger``).

    Columns: ``epoch`` (0-based) then the first epoch's log keys sorted; when that epoch has no ``val_*``
    key, ``val_<key>`` columns are added for each (filled with ``NA``). Floats are written in full
    precision, rows end with ``\\r\\n`` (the csv module's ``excel`` dialect, as Keras writes them), and
    the file is flushed after every epoch. ``append=True`` keeps the file and writes the header only if
    it is empty.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)  # kept open across epochs, like Keras
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(k):
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{k}" for k in self.keys])

        if not self.writer:

            class CustomDialect(csv.excel):
                delimiter = self.sep

            fieldnames = ["epoch"] + (self.keys or [])
            self.writer = csv.DictWriter(self.csv_file, fieldnames=fieldnames, dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()

        row_dict = collections.OrderedDict({"epoch": epoch})
        row_dict.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row_dict)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback built from plain functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; any other ``on_*`` hook can be given as a keyword too."""

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_train_begin=None,
        on_train_end=None,
        on_train_batch_begin=None,
        on_train_batch_end=None,
        **kwargs,
    ):
        super().__init__()
        self.__dict__.update(kwargs)
        if on_epoch_begin is not None:
            self.on_epoch_begin = on_epoch_begin
        if on_epoch_end is not None:
            self.on_epoch_end = on_epoch_end
        if on_train_begin is not None:
            self.on_train_begin = on_train_begin
        if on_train_end is not None:
            self.on_train_end = on_train_end
        if on_train_batch_begin is not None:
            self.on_train_batch_begin = on_train_batch_begin
        if on_train_batch_end is not None:
            self.on_train_batch_end = on_train_batch_end


class ModelCheckpoint(MonitorCallback):
    """Save the model or its weights every epoch or every ``save_freq`` batches (``keras.callbacks.ModelCheckpoint``).

    ``filepath`` is formatted with ``epoch`` (1-based), ``batch`` (1-based, batch-level saving) and the
    logs, e.g. ``weights.{epoch:02d}-{val_loss:.2f}.keras``. It must end in ``.keras`` (or ``.h5``), or
    ``.weights.h5`` with ``save_weights_only=True``. With ``save_best_only`` the file is written only when
    ``monitor`` improves on the best so far (``initial_value_threshold`` is the starting best).

    Writes are atomic: ``model.save``/``model.save_weights`` is called on a temporary path in the target
    folder (the same name behind a ``.irtool-<pid>-<random>.`` prefix, so the extension is kept) which is
    then renamed over the target with ``os.replace`` (``irtool.atomic``). If saving raises, the temporary file is removed and the
    previous checkpoint (if any) is left untouched.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        if self.save_freq != "epoch" and not isinstance(self.save_freq, int):
            raise ValueError(
                f"Unrecognized save_freq: {self.save_freq}. Expected save_freq are 'epoch' or integer values"
            )
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError(
                    "When using `save_weights_only=True` in `ModelCheckpoint`"
                    ", the filepath provided must end in `.weights.h5` "
                    f"(Keras weights format). Received: filepath={self.filepath}"
                )
        elif not any(self.filepath.endswith(ext) for ext in (".keras", ".h5")):
            raise ValueError(
                f"The filepath provided must end in `.keras` (Keras model format). Received: filepath={self.filepath}"
            )

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch, batch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return True
        if np.ndim(current) > 0:
            warnings.warn(
                "Can save best model only when `monitor` is a scalar value. "
                f"Received: {current}. Falling back to `save_best_only=False`.",
                stacklevel=2,
            )
            return True
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_msg(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                    f"saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise OSError(
                "Please specify a non-directory filepath for ModelCheckpoint. "
                f"Filepath used is an existing directory: {filepath}"
            )
        dirname = os.path.dirname(filepath)
        if dirname and not os.path.exists(dirname):
            os.makedirs(dirname, exist_ok=True)
        save = self.model.save_weights if self.save_weights_only else self.model.save
        _atomic_save(save, filepath)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch, batch, logs):
        logs = logs or {}
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from e


def _atomic_save(save, filepath: str) -> None:
    """Call ``save(tmp)`` on a temporary path beside ``filepath``, then rename it over ``filepath``."""
    with replacing(os.path.abspath(filepath)) as tmp:
        save(str(tmp))
        if not tmp.exists():
            raise FileNotFoundError(
                f"Saving the checkpoint wrote nothing at {str(tmp)!r} (expected a file for {filepath!r})."
            )
