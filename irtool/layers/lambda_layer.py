"""Lambda: wraps a function written in ``irtool.ops`` as a layer; the function is traced into
the graph like any layer's ``call``, so it runs in NumPy and exports to ONNX."""

from __future__ import annotations

import inspect
import types
import warnings

from irtool.ir import tree
from irtool.layers.layer import Layer, dtype_from_config
from irtool.ops.core import SymbolicTensor
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object
from irtool.serialization.python_code import dump_function, in_safe_mode, load_function


def _serialize_function(fn) -> dict:
    """Keras' config form of a function: ``__lambda__`` (its marshalled bytecode) or, for a
    named function, the reference ``serialize_keras_object`` writes (resolved by name on load)."""

    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        code, defaults, closure = dump_function(fn)
        return {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults, "closure": closure}}
    if callable(fn):
        return serialize_keras_object(fn)
    raise ValueError(f"Invalid input type for serialization. Received: {fn} of type {type(fn)}.")


def _is_lambda_config(config) -> bool:
    return isinstance(config, dict) and config.get("class_name") == "__lambda__"


def _deserialize_function(config, layer_name, what, safe_mode, custom_objects):

    if not _is_lambda_config(config):
        return deserialize_keras_object(config, custom_objects=custom_objects, safe_mode=safe_mode)
    if safe_mode:
        raise ValueError(
            f"Refusing to load Lambda layer '{layer_name}': its `{what}` is a Python `lambda` stored as bytecode in "
            "the config, and loading it would run code from the file (safe_mode=True). If you trust the source of "
            "the file, pass `safe_mode=False` to the loading function; or rebuild the layer in code."
        )
    inner = config["config"]
    return load_function(inner["code"], inner.get("defaults"), inner.get("closure"), name=layer_name)


class Lambda(Layer):
    """``Lambda(function, output_shape=None, mask=None, arguments=None)``.

    ``call(inputs)`` is ``function(inputs, **arguments)`` (plus ``mask=``/``training=`` when the
    function takes them). The function must compute with ``irtool.ops`` (or tensor operators):
    on symbolic inputs NumPy or Python math functions cannot run, and the layer says so.
    ``mask`` (a mask or a callable ``(inputs, mask) -> mask``) gives the output mask.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda's `function` must be callable. Received: {function!r}")
        self.arguments = arguments or {}
        self.function = function
        self.supports_masking = mask is not None
        self.mask = mask
        self._output_shape = output_shape
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}
        self._fn_expects_training_arg = "training" in params
        self._fn_expects_mask_arg = "mask" in params
        self.built = True

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if self._fn_expects_mask_arg:
            kwargs["mask"] = mask
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        symbolic = any(isinstance(t, SymbolicTensor) for t in tree.flatten(inputs))
        if not symbolic:
            return self.function(inputs, **kwargs)
        if mask is not None and self.mask is None and any(m is not None for m in tree.flatten(mask)):
            warnings.warn(
                f"Layer '{self.name}' (of type Lambda) was passed an input with a mask attached to it. However, this "
                "layer does not support masking and will therefore destroy the mask information. Downstream layers "
                "will not see the mask.",
                stacklevel=5,
            )
        try:
            outputs = self.function(inputs, **kwargs)
        except Exception as error:
            raise self._trace_error(error) from error
        for out in tree.flatten(outputs):
            if not isinstance(out, SymbolicTensor):
                raise TypeError(
                    f"The function of Lambda layer '{self.name}' returned a {type(out).__name__}, not a tensor computed "
                    "from its inputs. Write the function with `irtool.ops` so that it can be traced into the graph."
                )
        return outputs

    def _trace_error(self, error: Exception) -> Exception:
        kind = error if isinstance(error, (ValueError, TypeError)) else TypeError()
        message = (
            f"The function of Lambda layer '{self.name}' could not be traced on symbolic tensors: "
            f"{type(error).__name__}: {error}\nA Lambda's function is traced into the graph, so it must compute with "
            "`irtool.ops` (e.g. `ops.sin(x)`, `ops.matmul(x, w)`, `x * 2`), not NumPy, math or other libraries."
        )
        new = type(kind)(message)
        new._irtool_context = False
        return new

    def compute_mask(self, inputs, previous_mask=None):
        if callable(self.mask):
            return self.mask(inputs, previous_mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            raise NotImplementedError(
                "We could not automatically infer the shape of the Lambda's output. Please specify the "
                "`output_shape` argument for this Lambda layer."
            )
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        batch = tree.flatten(input_shape)[0]
        return (batch,) + tuple(self._output_shape)

    def get_config(self):
        config = super().get_config()
        config["function"] = _serialize_function(self.function)
        if self._output_shape is not None:
            config["output_shape"] = (
                _serialize_function(self._output_shape) if callable(self._output_shape) else self._output_shape
            )
        if self.mask is not None:
            config["mask"] = _serialize_function(self.mask) if callable(self.mask) else self.mask

        config["arguments"] = serialize_keras_object(dict(self.arguments))
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        """Rebuild the layer; a ``lambda`` stored as bytecode is loaded only with ``safe_mode=False``
        (given here or by the loading call around it), since that runs code from the config."""

        if safe_mode is None:
            safe_mode = in_safe_mode()
        safe_mode = safe_mode is not False  # unset means safe: fail closed
        config = dict(config)
        name = config.get("name", "lambda")
        config["function"] = _deserialize_function(config["function"], name, "function", safe_mode, custom_objects)
        if config.get("output_shape") is not None:
            shape = config["output_shape"]
            if isinstance(shape, dict):
                config["output_shape"] = _deserialize_function(shape, name, "output_shape", safe_mode, custom_objects)
            elif isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape):
                config["output_shape"] = tuple(shape)
        if isinstance(config.get("mask"), dict):
            config["mask"] = _deserialize_function(config["mask"], name, "mask", safe_mode, custom_objects)
        if config.get("arguments"):
            config["arguments"] = deserialize_keras_object(
                config["arguments"], custom_objects=custom_objects, safe_mode=safe_mode
            )
        config = dtype_from_config(config)
        return cls(**config)
