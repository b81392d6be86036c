"""``Model``: the base of functional and sequential models (and subclassed ones).

``Model(inputs, outputs)`` returns a ``Functional`` (as in Keras 3). The base class holds
what every model offers beyond a layer: ``predict``, ``summary``, ``export``, (with the
trainer) ``compile``/``fit``/``evaluate``, and saving in Keras 3's formats (``save`` to
``.keras``, ``save_weights``/``load_weights`` with ``.weights.h5``).

The models modules import one way: ``summary`` and ``functional_config`` (which know
models only through ``Model._model_kind``) <- ``model`` <- ``functional`` <- ``sequential``
<- ``cloning``. So the base class never names its subclasses: ``functional.py`` registers
``Functional`` on it (``Model._functional_class``) for ``Model(inputs, outputs)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import onnx

from irtool.layers.layer import Layer
from irtool.models.functional_config import model_from_config, model_to_json
from irtool.models.summary import print_summary
from irtool.onnx import export_onnx, to_onnx
from irtool.saving.saving_lib import load_weights, save_model, save_weights
from irtool.train.callbacks import CallbackList
from irtool.train.compile_config import deserialize_compile_config, serialize_compile_args
from irtool.train.trainer import Trainer, batch_size_or_default


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

    # What kind of model this is: "subclassed" here, "functional" on ``Functional``,
    # "sequential" on ``Sequential``. The summary and config code (below the model classes in
    # the import order) read it instead of importing the classes for ``isinstance``.
    _model_kind = "subclassed"

    # The class ``Model(inputs, outputs)`` builds: ``Functional``, which sets it here when
    # ``functional.py`` defines it (this module cannot import its own subclasses).
    _functional_class: type | None = None

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            functional = Model._functional_class
            return functional.__new__(functional, *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    # -- inference -----------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Run the model on ``x`` in batches (default 32); returns arrays in the output structure."""
        flat = self._flatten_feeds(x)
        n = _num_samples(flat)
        batch_size = batch_size_or_default(batch_size)
        if not verbose and callbacks is None and n <= batch_size:
            return self._pack_outputs(self._run_flat(flat))  # the fast path: one call, no hooks
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
        print_summary(
            self,
            line_length=line_length,
            positions=positions,
            print_fn=print_fn,
            expand_nested=expand_nested,
            show_trainable=show_trainable,
            layer_range=layer_range,
        )

    # -- training configuration -----------------------------------------------------------
    def get_compile_config(self) -> dict:
        """The ``compile`` arguments in Keras 3's serialized form (``{}`` when not compiled)."""
        if not self.compiled or not hasattr(self, "_compile_args"):
            return {}
        return serialize_compile_args(self._compile_args)

    def compile_from_config(self, config: dict, custom_objects=None) -> None:
        """``compile`` with a ``get_compile_config()`` dict, and create the optimizer's variables (so
        a loaded optimizer state has somewhere to go)."""
        if type(self).compile is not Model.compile:
            warnings.warn(
                "`compile()` was not called as part of model loading because the model's `compile()` method is "
                "custom. All subclassed Models that have `compile()` overridden should also override "
                "`get_compile_config()` and `compile_from_config(config)`. Alternatively, you can call `compile()` "
                "manually after loading.",
                stacklevel=2,
            )
            return
        self.compile(**deserialize_compile_config(config, custom_objects))
        if self.built and self.optimizer is not None:
            self.optimizer.build(self.trainable_weights)

    # -- saving ---------------------------------------------------------------------------
    def save(self, filepath, overwrite=True, zipped=None, **kwargs) -> None:
        """Save the model as a Keras 3 ``.keras`` archive (config, weights, optimizer state), atomically;
        ``zipped=False`` writes Keras' unzipped folder instead.

        >>> model.save("mnist.keras")                                     # doctest: +SKIP
        >>> restored = irtool.models.load_model("mnist.keras")            # doctest: +SKIP
        """
        save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None) -> None:
        """Save the weights (and the optimizer's state) in Keras 3's ``.weights.h5`` layout, atomically;
        with ``max_shard_size`` (GB), as Keras' sharded ``.weights.json`` index and shards."""
        save_weights(self, filepath, overwrite=overwrite, max_shard_size=max_shard_size)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs) -> None:
        """Load weights from a ``.weights.h5`` file or a ``.keras`` archive (written by irtool or Keras 3),
        or from Keras' legacy ``.h5`` weights (the keras.applications ImageNet files; ``by_name=True``
        matches their layers by name instead of by order).

        Every weight's shape is checked first; a mismatch raises (naming the layer and both shapes)
        and leaves the model unchanged, or with ``skip_mismatch=True`` skips that layer with a warning.
        """
        load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    # -- config (irtool.models.functional_config) -------------------------------------------
    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from ``get_config()``'s output (a functional config gives a ``Functional``)."""
        return model_from_config(cls, config, custom_objects)

    def to_json(self, **kwargs) -> str:
        """The serialized model as a JSON string (``kwargs`` go to ``json.dumps``)."""
        return model_to_json(self, **kwargs)

    def export(self, filepath, format="onnx", opset=None, verbose=None, **kwargs):
        """Write the model as an ONNX file (the only format irtool exports)."""
        if format != "onnx":
            raise ValueError(f"Unrecognized format={format!r}. irtool exports format='onnx'.")
        return export_onnx(self, filepath, opset=opset, **kwargs)

    def to_onnx(self, opset=None) -> onnx.ModelProto:
        """The model as a validated ``onnx.ModelProto``, in memory (what ``irtool.runtime.Session.from_model`` runs)."""
        return to_onnx(self, opset=opset)


def _num_samples(flat: list) -> int:
    if len(flat) == 1:  # the common case, without the set
        return int(flat[0].shape[0]) if getattr(flat[0], "ndim", 0) else 1
    sizes = {int(a.shape[0]) for a in flat if getattr(a, "ndim", 0)}
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the inputs have different sizes {sorted(sizes)}.")
    return sizes.pop() if sizes else 1
