"""The training and evaluation loops: ``compile``, ``fit``, ``evaluate``, ``*_on_batch``.

Keras 3 semantics throughout (keras.md §4): batches of 32 by default with the last partial
batch kept, ``validation_split`` taken from the end before shuffling, running epoch means in
the logs (the loss averaged over samples), ``History`` returned, ``val_*`` metrics at epoch
end, evaluate's return order, and the callback hooks in Keras' order.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from irtool import random
from irtool.ir.executor import CompiledGraph
from irtool.ops.fusion import fuse_matmul_add, fuse_relu
from irtool.train import optimizers
from irtool.train.autodiff import GradientProgram
from irtool.train.callbacks import CallbackList
from irtool.train.data import (
    batch_stream,
    epoch_batches,
    is_batch_source,
    is_indexed,
    sample_weights_for,
    source_steps,
    targets_of,
)
from irtool.train.training_graph import CompileConfig


class _RunningMean:
    """A sample-weighted running mean (Keras' loss trackers)."""

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def update_state(self, value, weight) -> None:
        self.total += float(value) * weight
        self.count += weight

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0


def batch_size_or_default(batch_size) -> int:
    """``batch_size``, 32 when it is ``None`` or 0 (as in Keras); a negative one slices rows away silently,
    so it is refused with Keras' message."""
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 0):
        raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
    return int(batch_size or 32)


class Trainer:
    """Mixed into ``Model``: everything that needs a compiled loss and optimizer."""

    compiled = False
    optimizer = None
    stop_training = False
    history = None

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        weighted_metrics=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto",
        auto_scale_loss=True,
    ) -> None:
        """Configure training: optimizer, losses (one, a list by output, or a dict by name), metrics.

        The arguments are kept as given, so ``save()`` can store them (``get_compile_config``).
        """
        self.optimizer = optimizers.get(optimizer)
        # A Sequential model without an Input has no outputs until its first batch builds it (as in
        # Keras): the losses and metrics are then spread over the outputs on first use.
        self._compile_config = None
        self._compile_args = {
            "optimizer": self.optimizer,
            "loss": loss,
            "loss_weights": loss_weights,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
            "run_eagerly": run_eagerly,
            "steps_per_execution": steps_per_execution,
            "jit_compile": jit_compile,
        }
        self.compiled = True
        self.stop_training = False
        self._loss_tracker = _RunningMean("loss")
        self._output_loss_trackers = None

    # -- metrics -----------------------------------------------------------------------------------
    @property
    def metrics(self) -> list:
        if not self.compiled:
            return []
        out = [self._loss_tracker] + list(self._output_loss_trackers or [])
        return out + [m for _, _, m, _ in getattr(self._compile_config, "metrics", None) or []]

    @property
    def metrics_names(self) -> list:
        if not self.compiled or getattr(self._compile_config, "metrics", None) is None:
            return ["loss", "compile_metrics"] if self.compiled else []
        return ["loss", "compile_metrics"] + [t.name for t in self._output_loss_trackers or []]

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    @property
    def _facing(self):
        """The model callbacks see: this one, or the subclassed model this is the traced twin of
        (a ModelCheckpoint saves that, and EarlyStopping stops it)."""
        return self.__dict__.get("_twin_of") or self

    def _check_compiled(self) -> None:
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")

    def _require_compiled(self) -> CompileConfig:
        self._check_compiled()
        if self._compile_config is None:
            args = self._compile_args
            self._compile_config = CompileConfig(
                self, self.optimizer, args["loss"], args["loss_weights"], args["metrics"], args["weighted_metrics"]
            )
        return self._compile_config

    # -- one batch ---------------------------------------------------------------------------------
    def _prepare(self, y: list, weighted: bool = False):
        """The compiled training/evaluation programs for batches with or without sample weights."""
        config = self._require_compiled()
        if config.losses is None:
            config.build(y, self.outputs)
            config.trainable = list(self.trainable_weights)
            if config.multi_output:
                self._output_loss_trackers = [
                    _RunningMean(f"{config.names[k]}_loss")
                    for k in range(len(config.names))
                    if config.losses[k] is not None
                ]
            if hasattr(self.optimizer, "build"):
                self.optimizer.build(config.trainable)
        if weighted not in config.programs:
            graph = config.training_graph(y, weighted)
            config.programs[weighted] = (
                GradientProgram(fuse_relu(graph), config.trainable, training=True, rng=random.generator()),
                CompiledGraph(fuse_relu(fuse_matmul_add(graph))),
            )
        return config, config.programs[weighted]

    def _step(self, x: list, y: list, w: list, training: bool) -> list:
        weighted = any(v is not None for v in w)
        config, (train_program, eval_program) = self._prepare(y, weighted)
        feeds = config.feeds(x, y, w)
        if training:
            outputs, grads = train_program.run(feeds)
            self.optimizer.apply(grads, config.trainable)
        else:
            outputs = eval_program.run(feeds)
        n = len(x[0])
        self._loss_tracker.update_state(outputs[0], n)
        k_losses = len(config.loss_outputs)
        for tracker, value in zip(self._output_loss_trackers or [], outputs[1 : 1 + k_losses]):
            tracker.update_state(value, n)
        predictions = outputs[1 + k_losses :]
        for k, _, metric, weighted_metric in config.metrics:
            metric.update_state(y[k], predictions[k], sample_weight=w[k] if weighted_metric else None)
        return outputs

    def _logs(self) -> dict:
        config = self._require_compiled()
        logs = {"loss": self._loss_tracker.result()}
        for tracker in self._output_loss_trackers or []:
            logs[tracker.name] = tracker.result()
        for _, name, metric, _ in config.metrics or []:
            logs[name] = float(np.asarray(metric.result()))
        return logs

    # -- public loops ------------------------------------------------------------------------------
    def train_on_batch(self, x=None, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the batch's loss (and metrics), like Keras."""
        xs, ys, ws = self._arrays(x, y, sample_weight, class_weight)
        self.reset_metrics()
        self._step(xs, ys, ws, training=True)
        return self._result(self._logs(), return_dict)

    def test_on_batch(self, x=None, y=None, sample_weight=None, return_dict=False):
        xs, ys, ws = self._arrays(x, y, sample_weight, None)
        self.reset_metrics()
        self._step(xs, ys, ws, training=False)
        return self._result(self._logs(), return_dict)

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ):
        """Train for ``epochs`` epochs; returns the ``History`` (Keras 3 semantics). ``x`` is the data
        (arrays, ``y`` the targets) or gives the batches itself: a ``PyDataset``/Sequence or a generator
        of ``(x, y)`` or ``(x, y, sample_weight)``, as is ``validation_data``."""
        self._check_compiled()
        batch_size = batch_size_or_default(batch_size)
        rng = random.generator()
        if is_batch_source(x):
            if y is not None or sample_weight is not None or validation_split:
                raise ValueError(
                    "`y`, `sample_weight` and `validation_split` cannot be given when `x` is a dataset or a generator: "
                    f"its batches hold the targets and weights. Received x of type {type(x).__name__}."
                )
            steps = source_steps(x, steps_per_epoch)
            stream = batch_stream(x)

            def epoch(order):
                for bx, by, bw in epoch_batches(x, steps, stream, order):
                    yield self._arrays(bx, by, bw, class_weight)

        else:
            xs, ys, ws = self._arrays(x, y, sample_weight, class_weight)
            n = len(xs[0])
            steps = steps_per_epoch or math.ceil(n / batch_size)

            def epoch(order):
                for step in range(steps):
                    index = order[(step * batch_size) % n : (step * batch_size) % n + batch_size]
                    if shuffle == "batch":
                        index = rng.permutation(index)
                    yield _take(xs, index), _take(ys, index), _take(ws, index)

        val = None
        if validation_split and validation_data is None:
            xs, ys, ws, val = _split(xs, ys, ws, validation_split)
            n = len(xs[0])
            steps = steps_per_epoch or math.ceil(n / batch_size)
        elif validation_data is not None:
            val = validation_data if is_batch_source(validation_data) else self._validation_arrays(validation_data)
        val_stream = batch_stream(validation_data) if is_batch_source(validation_data) else None
        callback_list = (
            callbacks
            if isinstance(callbacks, CallbackList)
            else CallbackList(
                callbacks,
                add_history=True,
                add_progbar=verbose != 0,
                model=self._facing,
                verbose=verbose,
                epochs=epochs,
                steps=steps,
            )
        )
        facing = self._facing
        facing.stop_training = False
        callback_list.on_train_begin()
        epoch_logs: dict = {}
        for epoch_index in range(initial_epoch, epochs):
            self.reset_metrics()
            callback_list.on_epoch_begin(epoch_index)
            if is_batch_source(x):  # a PyDataset's batches in a new order each epoch, as Keras reads them
                order = rng.permutation(len(x)) if shuffle is True and is_indexed(x) else None
            else:
                order = rng.permutation(n) if shuffle is True else np.arange(n)
            step = -1
            for step, (bx, by, bw) in enumerate(epoch(order)):
                callback_list.on_train_batch_begin(step)
                self._step(bx, by, bw, training=True)
                callback_list.on_train_batch_end(step, self._logs())
                if facing.stop_training:
                    break
            if step < 0:  # a generator that has run out: no epoch to log (Keras stops here too)
                warnings.warn(
                    f"The training data ran out of batches at epoch {epoch_index + 1}; training stops here. "
                    "Make the generator repeat (or pass a PyDataset) to train for more epochs.",
                    stacklevel=2,
                )
                break
            epoch_logs = dict(self._logs())
            if val is not None and _validate_now(epoch_index, validation_freq):
                val_logs = self._evaluate_batches(
                    self._batches_of(val, validation_batch_size or batch_size, validation_steps, val_stream),
                    callback_list,
                )
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch_index, epoch_logs)
            if facing.stop_training:
                break
        if getattr(self.optimizer, "use_ema", False):
            self.optimizer.finalize_variable_values(self.trainable_weights)
        callback_list.on_train_end(logs=epoch_logs)
        return facing.history  # the History callback's, on the model it reports to

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
    ):
        """Loss and metrics on ``x``/``y`` (a scalar when there is only the loss, like Keras); ``x`` may
        be a ``PyDataset``/Sequence or a generator of batches, as for ``fit``."""
        self._check_compiled()
        batch_size = batch_size_or_default(batch_size)
        if is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("`y` and `sample_weight` cannot be given when `x` is a dataset or a generator.")
            data, n_steps = x, source_steps(x, steps)
        else:
            data = self._arrays(x, y, sample_weight, None)
            n_steps = steps or math.ceil(len(data[0][0]) / batch_size)
        callback_list = (
            callbacks
            if isinstance(callbacks, CallbackList)
            else CallbackList(
                callbacks, add_progbar=verbose != 0, model=self._facing, verbose=verbose, epochs=1, steps=n_steps
            )
        )
        stream = batch_stream(x) if is_batch_source(x) else None
        logs = self._evaluate_batches(self._batches_of(data, batch_size, steps, stream), callback_list)
        return self._result(logs, return_dict)

    def _validation_arrays(self, validation_data) -> tuple:
        vx, vy, *vw = validation_data
        return self._arrays(vx, vy, vw[0] if vw else None, None)

    def _batches_of(self, data, batch_size, steps=None, stream=None):
        """``(xs, ys, ws)`` batches of arrays (``data`` as ``_arrays`` gives them), or of a batch source
        (read from ``stream`` when it is not indexed)."""
        if is_batch_source(data):
            for bx, by, bw in epoch_batches(data, source_steps(data, steps), stream):
                yield self._arrays(bx, by, bw, None)
            return
        xs, ys, ws = data
        for step in range(steps or math.ceil(len(xs[0]) / batch_size)):
            index = slice(step * batch_size, (step + 1) * batch_size)
            yield _take(xs, index), _take(ys, index), _take(ws, index)

    def _evaluate_batches(self, batches, callback_list) -> dict:
        self.reset_metrics()
        callback_list.on_test_begin()
        step = -1
        for step, (bx, by, bw) in enumerate(batches):
            callback_list.on_test_batch_begin(step)
            self._step(bx, by, bw, training=False)
            callback_list.on_test_batch_end(step, self._logs())
        if step < 0:
            raise ValueError(
                "The evaluation data produced no batches (a generator that has run out?): nothing to evaluate."
            )
        logs = self._logs()
        callback_list.on_test_end(logs)
        return logs

    def _result(self, logs: dict, return_dict: bool):
        if return_dict:
            return dict(sorted(logs.items()))
        config = self._require_compiled()
        with_loss = [k for k in range(len(config.names)) if config.losses and config.losses[k] is not None]
        trackers = dict(zip(with_loss, self._output_loss_trackers or []))
        values = [logs["loss"]] + [logs[trackers[k].name] for k in config.loss_order if k in trackers]
        metric_items = [(name, logs[name]) for _, name, _, _ in config.metrics]
        if config.multi_output:
            metric_items.sort()
        values += [v for _, v in metric_items]
        return values[0] if len(values) == 1 else values

    def _arrays(self, x, y, sample_weight, class_weight):
        xs = self._flatten_feeds(x)
        ys = targets_of(self, y)
        ws = sample_weights_for(ys, sample_weight, class_weight, len(ys))
        sizes = {len(a) for a in xs + ys}
        if len(sizes) != 1:
            raise ValueError(
                f"Data cardinality is ambiguous: x and y have different numbers of samples {sorted(sizes)}."
            )
        return xs, ys, ws


def _take(arrays: list, index) -> list:
    return [None if a is None else a[index] for a in arrays]


def _split(xs, ys, ws, fraction: float):
    n = len(xs[0])
    split_at = int(math.floor(n * (1.0 - fraction)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"Training data contains {n} samples, which is not sufficient to split it into a validation and "
            f"training set as specified by `validation_split={fraction}`. Either provide more data, or a "
            "different value for the `validation_split` argument."
        )
    head = slice(0, split_at)
    tail = slice(split_at, n)
    return _take(xs, head), _take(ys, head), _take(ws, head), (_take(xs, tail), _take(ys, tail), _take(ws, tail))


def _validate_now(epoch: int, freq) -> bool:
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    return epoch + 1 in freq
