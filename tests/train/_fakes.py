"""A stand-in for a model, with just what callbacks touch."""

from __future__ import annotations

import numpy as np


class FakeOptimizer:
    def __init__(self, learning_rate=0.01):
        self.learning_rate = learning_rate


class FakeModel:
    """``stop_training``, ``optimizer.learning_rate``, ``get_weights``/``set_weights`` and ``save``/``save_weights``
    that write ``payload`` to the path they are given (or raise ``fail`` after writing half of it)."""

    def __init__(self, learning_rate=0.01):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.weights = [np.zeros(2), np.zeros(3)]
        self.saved = []  # (method, path) in call order
        self.payload = b"model"
        self.fail = None

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def bump(self, value):
        """Change the weights so restoring can be observed."""
        self.weights = [np.full_like(w, value) for w in self.weights]

    def _write(self, method, path):
        self.saved.append((method, str(path)))
        with open(path, "wb") as f:
            f.write(self.payload[: len(self.payload) // 2])
            if self.fail is not None:
                raise self.fail
            f.write(self.payload[len(self.payload) // 2 :])

    def save(self, filepath, overwrite=True, **kwargs):
        self._write("save", filepath)

    def save_weights(self, filepath, overwrite=True):
        self._write("save_weights", filepath)


def run_epochs(callbacks, model, epoch_logs, steps=2, verbose=0, batch_logs=None):
    """Drive ``callbacks`` (a list) through ``fit``'s hook sequence; returns the CallbackList.

    ``epoch_logs`` is a list of dicts, one per epoch; stops like fit when ``model.stop_training`` is set."""
    from irtool.train.callbacks import CallbackList

    cbs = CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model, verbose=verbose,
        epochs=len(epoch_logs), steps=steps,
    )  # fmt: skip
    model.stop_training = False
    cbs.on_train_begin()
    logs = {}
    for epoch, logs in enumerate(epoch_logs):
        cbs.on_epoch_begin(epoch)
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            cbs.on_train_batch_end(step, (batch_logs or {}).get((epoch, step), {"loss": logs.get("loss", 0.0)}))
            if model.stop_training:
                break
        cbs.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    cbs.on_train_end(logs=logs)
    return cbs
