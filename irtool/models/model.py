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

import functools
import math
import warnings

import numpy as np
import onnx

from irtool import backend
from irtool.ir import tree
from irtool.ir.dtypes import standardize_dtype
from irtool.layers.input_layer import Input
from irtool.layers.layer import Layer
from irtool.models.functional_config import model_from_config, model_to_json
from irtool.models.summary import print_summary
from irtool.onnx import export_onnx, to_onnx
from irtool.saving.saving_lib import load_weights, save_model, save_weights
from irtool.train.callbacks import CallbackList
from irtool.train.compile_config import deserialize_compile_config, serialize_compile_args
from irtool.train.data import batch_stream, epoch_batches, first_inputs, is_batch_source, is_indexed, source_steps
from irtool.train.trainer import Trainer, batch_size_or_default


def _on_compiled_twin(method):
    """A Trainer method that a subclassed model runs on its compiled functional twin."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if self._model_kind != "subclassed":
            return method(self, *args, **kwargs)
        x = args[0] if args else kwargs.get("x")
        twin = self._compiled_twin(x)
        return getattr(twin, method.__name__)(*args, **kwargs)  # callbacks report to this model

    return run


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

    # -- subclassed models ---------------------------------------------------------------
    # A subclassed model (``class MyModel(keras.Model)`` with its own ``call``) has no graph: an
    # eager call runs ``call`` on arrays. For predict, fit, evaluate and export it is traced into a
    # functional twin, ``Model(inputs, self(inputs))`` on inputs shaped like the data (any batch
    # size), made once per input signature. The twin's one layer is this model, so its weights are
    # this model's Variables; compile's arguments are handed to it.
    @property
    def layers(self) -> list:
        """The layers this model tracks (a subclassed model's attributes), as Keras lists them."""
        return list(self._sublayers())

    def build(self, input_shape=None) -> None:
        """A subclassed model traces its ``call`` on float32 Inputs of ``input_shape`` (batch dim
        first; a list or dict of shapes for several inputs), creating its weights, as Keras'
        ``Model.build`` does (also what loading a ``.keras`` file calls)."""
        if self._model_kind != "subclassed" or input_shape is None:
            return super().build(input_shape)
        self.built = True  # before tracing: the traced call must not build again
        if not self.__dict__.get("_trace_later"):
            self._new_twin(_inputs_for_shapes(input_shape))
        return None

    def _build_from(self, args, kwargs) -> None:
        # A subclassed model's first call builds it by running ``call`` itself: its ``build`` only
        # notes the input shapes then (for get_build_config, and what ``export`` traces before any
        # fit or predict). Tracing inside the call would record a second call within it.
        self.__dict__["_trace_later"] = True
        try:
            super()._build_from(args, kwargs)
        finally:
            del self.__dict__["_trace_later"]

    def _twin(self, x=None) -> Model:
        """The functional twin for data ``x``; without data (``export``), the first one made, or
        one traced from the shapes ``build`` was given: the model's signature does not change with
        the data it last predicted on."""
        if x is None:
            twin = self.__dict__.get("_first_twin")
            shapes = self.__dict__.get("_build_shapes_dict")  # what build() was given (ours or the model's own)
            if twin is None and shapes is not None and len(shapes) == 1:
                twin = self._new_twin(_inputs_for_shapes(next(iter(shapes.values()))))
            if twin is None:
                raise ValueError(
                    f"Model '{self.name}' is a subclassed model that has not been built: call it on data "
                    "(`model.predict(x)`, `model.fit(...)`) or `model.build(input_shape)` first, so that irtool "
                    "can trace its `call` into a graph."
                )
            return twin
        if is_batch_source(x):  # the signature of its first batch (a generator's cannot be read ahead)
            if not is_indexed(x):
                twin = self.__dict__.get("_twin_model")
                if twin is None:
                    raise ValueError(
                        f"Subclassed model '{self.name}' has not seen data yet, and a generator's first batch "
                        "cannot be read ahead: call `model.build(input_shape)` (or the model on one batch) first."
                    )
                return twin
            x = first_inputs(x)
        arrays = tree.map_structure(_as_array, x)
        twins = self.__dict__.setdefault("_twins", {})  # signature -> twin, the most recent last
        untraceable = self.__dict__.setdefault("_untraceable", set())  # general signatures a layer refused
        general, exact = (repr(tree.map_structure(lambda a, g=g: _signature(a, g), arrays)) for g in (True, False))
        key = general if general in twins else exact
        twin = twins.pop(key, None)
        if twin is None and general not in untraceable:
            try:  # one twin for every length, image size...: those dims unknown, as Keras' own inputs
                twin, key = self._new_twin(_inputs_like(arrays, general=True)), general
            except (ValueError, TypeError):  # a layer needs them (Flatten before a Dense): the exact shape
                untraceable.add(general)
        if twin is None:
            twin, key = self._new_twin(_inputs_like(arrays, general=False)), exact
        twins[key] = twin
        while len(twins) > _MAX_TWINS:
            twins.pop(next(iter(twins)))
        self.__dict__["_twin_model"] = twin
        return twin

    def _new_twin(self, inputs) -> Model:
        twin = Model(*_traced(self, inputs), name=self.name)
        # Kept outside the tracked attributes: the twin is a view of this model, not a sublayer.
        twin.__dict__["_twin_of"] = self  # what callbacks see while it trains
        self.__dict__["_twin_model"] = twin
        self.__dict__.setdefault("_first_twin", twin)
        return twin

    @property
    def metrics(self) -> list:
        """The loss and metric trackers; a subclassed model's are its twin's, which trained."""
        twin = self.__dict__.get("_twin_model")
        return twin.metrics if twin is not None and twin.compiled else Trainer.metrics.fget(self)

    @property
    def metrics_names(self) -> list:
        twin = self.__dict__.get("_twin_model")
        return twin.metrics_names if twin is not None and twin.compiled else Trainer.metrics_names.fget(self)

    def _compiled_twin(self, x) -> Model:
        twin = self._twin(x)
        if self.compiled and twin.__dict__.get("_compiled_from") is not self._compile_args:
            twin.compile(**self._compile_args)
            twin.__dict__["_compiled_from"] = self._compile_args
        return twin

    # -- inference -----------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Run the model on ``x`` in batches (default 32); returns arrays in the output structure.
        ``x`` may give the batches itself (a ``PyDataset``/Sequence or a generator; a batch's ``y`` is
        ignored; ``callbacks`` and ``verbose`` are not used then: each batch is predicted quietly)."""
        if is_batch_source(x):
            batches = epoch_batches(x, source_steps(x, steps), batch_stream(x))
            parts = [self.predict(bx, batch_size, 0) for bx, _, _ in batches]
            if not parts:
                raise ValueError(f"The dataset or generator given to predict() produced no batches: {x!r}")
            flat = [tree.flatten(p) for p in parts]
            return tree.pack_like(parts[0], [np.concatenate(chunks, axis=0) for chunks in zip(*flat)])
        if self._model_kind == "subclassed":
            return self._twin(x).predict(x, batch_size, verbose, steps, callbacks)
        flat = self._flatten_feeds(x)
        n = _num_samples(flat)
        batch_size = batch_size_or_default(batch_size)
        if not verbose and callbacks is None and n <= batch_size:
            return self._pack_outputs(self._run_flat(flat))  # the fast path: one call, no hooks
        total = steps or max(1, math.ceil(n / batch_size))
        hooks = (
            callbacks
            if isinstance(callbacks, CallbackList)
            else CallbackList(
                callbacks, add_progbar=verbose != 0, model=self._facing, verbose=verbose, epochs=1, steps=total
            )
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
        if self._model_kind == "subclassed":
            return self._twin(x).predict_on_batch(x)
        return self._pack_outputs(self._run_flat(self._flatten_feeds(x)))

    fit = _on_compiled_twin(Trainer.fit)
    evaluate = _on_compiled_twin(Trainer.evaluate)
    train_on_batch = _on_compiled_twin(Trainer.train_on_batch)
    test_on_batch = _on_compiled_twin(Trainer.test_on_batch)

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
        model = self._twin() if self._model_kind == "subclassed" else self
        return export_onnx(model, filepath, opset=opset, **kwargs)

    def to_onnx(self, opset=None) -> onnx.ModelProto:
        """The model as a validated ``onnx.ModelProto``, in memory (what ``irtool.runtime.Session.from_model`` runs)."""
        return to_onnx(self._twin() if self._model_kind == "subclassed" else self, opset=opset)


def _as_array(a):
    return a if isinstance(a, np.ndarray) else np.asarray(a)


# A subclassed model keeps this many twins (input signatures), the least recently used dropped.
_MAX_TWINS = 4


def _signature(a: np.ndarray, general: bool) -> tuple:
    """The Input a twin traces for array ``a``: floats in floatx (Keras autocasts them), and with
    ``general`` every dim but the batch unknown, or for floats every dim but the last (the features
    a Dense needs) too."""
    floating = np.issubdtype(a.dtype, np.floating)
    dtype = backend.floatx() if floating else standardize_dtype(a.dtype)
    shape = tuple(a.shape[1:])
    if general and shape:
        shape = (None,) * (len(shape) - 1) + (shape[-1] if floating else None,)
    return shape, dtype


def _inputs_like(arrays, general: bool):
    """Inputs of ``_signature(a, general)`` for ``arrays``, in their structure (dict keys as names)."""

    def one(a, name=None):
        shape, dtype = _signature(a, general)
        return Input(shape, dtype=dtype, name=name)

    if isinstance(arrays, dict):
        return {k: one(a, k) for k, a in arrays.items()}
    return tree.map_structure(one, arrays)


def _inputs_for_shapes(shapes):
    """Float32 Inputs for ``build``'s shapes (a shape, or a list or dict of them), batch dim free."""

    def one(shape, name=None):
        return Input(shape=tuple(shape)[1:], dtype="float32", name=name)

    if isinstance(shapes, dict):
        return {name: one(shape, name) for name, shape in shapes.items()}
    if all(d is None or isinstance(d, int) for d in shapes):
        return one(shapes)
    return [one(shape) for shape in shapes]


def _traced(model: Model, inputs) -> tuple:
    """``(inputs, model(inputs))``: ``model``'s call recorded on symbolic inputs. ``training=None``
    overrides a ``call(x, training=False)`` default, so the layers inside act by mode: batch
    statistics and dropout when the twin trains (Keras' fit calls ``model(x, training=True)``)."""
    kwargs = {"training": None} if model._call_has_training else {}
    return inputs, model(inputs, **kwargs)


def _num_samples(flat: list) -> int:
    if len(flat) == 1:  # the common case, without the set
        return int(flat[0].shape[0]) if getattr(flat[0], "ndim", 0) else 1
    sizes = {int(a.shape[0]) for a in flat if getattr(a, "ndim", 0)}
    if len(sizes) > 1:
        raise ValueError(f"Data cardinality is ambiguous: the inputs have different sizes {sorted(sizes)}.")
    return sizes.pop() if sizes else 1
