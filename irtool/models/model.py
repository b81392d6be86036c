"""``Model``: the base of functional and sequential models (and subclassed ones).

``Model(inputs, outputs)`` returns a ``Functional`` (as in Keras 3). The base class holds
what every model offers beyond a layer: ``predict``, ``summary``, ``export``, and (with the
trainer) ``compile``/``fit``/``evaluate``.
"""

from __future__ import annotations

import math

import numpy as np

from irtool.layers.layer import Layer
from irtool.train.loop import Trainer


class Model(Trainer, Layer):
    """A layer with training and inference features. ``Model(inputs, outputs)`` builds a graph.

    >>> import irtool as keras
    >>> from irtool import layers
    >>> inputs = keras.Input(shape=(784,))
    >>> outputs = layers.Dense(10)(layers.Dense(64, activation="relu")(inputs))
    >>> model = keras.Model(inputs, outputs, name="mnist_model")
    >>> model.count_params()
    50890
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            from irtool.models.functional import Functional

            return Functional.__new__(Functional, *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    # -- inference -----------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Run the model on ``x`` in batches (default 32); returns arrays in the output structure."""
        flat = self._flatten_feeds(x)
        n = _num_samples(flat)
        batch_size = batch_size or 32
        if not verbose and callbacks is None and n <= batch_size:
            return self._pack_outputs(self._run_flat(flat))  # the fast path: one call, no hooks
        from irtool.train.callbacks import CallbackList

        total = steps or max(1, math.ceil(n / batch_size))
        hooks = (
            callbacks
            if isinstance(callbacks, CallbackList)
            else CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=total)
        )
        hooks.on_predict_begin()
        chunks = []
        for step in range(total):
            hooks.on_predict_batch_begin(step)
            chunks.append(self._run_flat([a[step * batch_size : (step + 1) * batch_size] for a in flat]))
            hooks.on_predict_batch_end(step, {"outputs": chunks[-1]})
        hooks.on_predict_end()
        results = chunks[0] if len(chunks) == 1 else [np.concatenate(parts, axis=0) for parts in zip(*chunks)]
        return self._pack_outputs(results)

    def predict_on_batch(self, x):
        return self._pack_outputs(self._run_flat(self._flatten_feeds(x)))

    def summary(
        self,
        line_length=None,
        positions=None,
        print_fn=None,
        expand_nested=False,
        show_trainable=False,
        layer_range=None,
    ):
        """Print a Keras-format table of the model's layers, shapes and parameter counts."""
        from irtool.models.summary import print_summary

        print_summary(
            self,
            line_length=line_length,
            positions=positions,
            print_fn=print_fn,
            expand_nested=expand_nested,
            show_trainable=show_trainable,
            layer_range=layer_range,
        )

    def export(self, filepath, format="onnx", opset=None, verbose=None, **kwargs):
        """Write the model as an ONNX file (the only format irtool exports)."""
        if format != "onnx":
            raise ValueError(f"Unrecognized format={format!r}. irtool exports format='onnx'.")
        from irtool.onnx import export_onnx

        return export_onnx(self, filepath, opset=opset, **kwargs)


def _num_samples(flat: list) -> int:
    sizes = {int(a.shape[0]) for a in flat if getattr(a, "ndim", 0)}
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the inputs have different sizes {sorted(sizes)}.")
    return sizes.pop() if sizes else 1
