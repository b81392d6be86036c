"""Keras 3 object serialization: objects <-> ``{"module", "class_name", "config", "registered_name"}``.

This is the format of Keras 3's ``config.json`` and ``get_config()`` trees, so what irtool
writes loads in Keras and the reverse. irtool's public classes are written under Keras'
public module names (an irtool ``Dense`` is ``{"module": "keras.layers", "class_name": "Dense"}``)
and read back through a fixed table of Keras module names to irtool namespaces. A class that
is not in that table must come from ``custom_objects``, a ``custom_object_scope`` or
``@register_keras_serializable``: modules named in a config are never imported, and Python
code in a config (a ``lambda``) is refused unless ``safe_mode=False``.

>>> from irtool import layers
>>> config = serialize_keras_object(layers.Dense(3, name="d"))
>>> config["module"], config["class_name"], config["config"]["units"]
('keras.layers', 'Dense', 3)
>>> deserialize_keras_object(config).units
3
"""

from __future__ import annotations

import types
import warnings

import numpy as np

import irtool.ops as ops_namespace
from irtool.ops.core import SymbolicTensor
from irtool.ops.variable import Variable
from irtool.serialization import config_limits
from irtool.serialization.object_registration import (
    CustomObjectScope,
    get_registered_name,
    get_registered_object,
    scoped_custom_objects,
)
from irtool.serialization.python_code import SafeModeScope, dump_function, in_safe_mode, load_function

PLAIN_TYPES = (str, int, float, bool)

# Keras' internal packages (``keras.src.layers.core.dense``...) by their first component.
_SRC_PACKAGES = {
    "layers": "keras.layers",
    "initializers": "keras.initializers",
    "regularizers": "keras.regularizers",
    "constraints": "keras.constraints",
    "activations": "keras.activations",
    "optimizers": "keras.optimizers",
    "losses": "keras.losses",
    "metrics": "keras.metrics",
}
_KINDS = {
    "keras.layers": "layer",
    "keras.initializers": "initializer",
    "keras.regularizers": "regularizer",
    "keras.constraints": "constraint",
    "keras.activations": "activation",
    "keras.optimizers": "optimizer",
    "keras.optimizers.schedules": "learning rate schedule",
    "keras.losses": "loss",
    "keras.metrics": "metric",
    # Keras-internal modules whose classes saved models name (application building blocks):
    # irtool registers a namespace under the same module name.
    "keras.src.applications.convnext": "layer",
    "keras.src.applications.inception_resnet_v2": "layer",
}
# Where a class or function exported twice is written: the first of these namespaces that has it.
_PRECEDENCE = (
    "keras",
    "keras.src.models.functional",
    "keras.layers",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.optimizers.schedules",
    "keras.optimizers",
    "keras.losses",
    "keras.metrics",
    "keras.activations",
    "keras.ops",
    "keras.src.applications.convnext",
)
_MODEL_CLASSES = ("Functional", "Model", "Sequential")
# Keras layers that wrap code of one backend (a JAX function, a Flax or PyTorch module, a
# TensorFlow SavedModel): their configs and files hold that code or a path to it, not Keras ops,
# so irtool refuses them by name with what to do instead of a generic "unknown layer".
_BACKEND_LAYERS = {
    "JaxLayer": "a JAX function (`call_fn`) and its parameters",
    "FlaxLayer": "a Flax module",
    "TorchModuleWrapper": "a PyTorch `torch.nn.Module`",
    "TFSMLayer": "a TensorFlow SavedModel endpoint",
}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")


# -- the public namespaces, registered by the packages that define them ----------------------
# Serialization sits below layers, models and the trainer, so it cannot import them: each public
# irtool namespace registers its objects under the Keras module it stands for when it is imported
# (``import irtool`` imports them all), and raw operations register how they are revived.
_NAMESPACES: dict = {}  # Keras module -> {name: irtool object}
_PUBLIC: dict = {}  # built on first use from _NAMESPACES
_OPERATION_REVIVER: list = []


def register_namespace(keras_module: str, objects: dict) -> None:
    """Declare ``objects`` (a namespace's ``{name: object}``) as irtool's ``keras_module``: they are
    written under that module's name and read back from it.

    >>> register_namespace("keras.layers", vars(irtool.layers))  # doctest: +SKIP
    """
    _NAMESPACES[keras_module] = {k: v for k, v in objects.items() if not k.startswith("_")}
    _PUBLIC.clear()


def model_class(name: str) -> type:
    """irtool's ``Model``, ``Functional`` or ``Sequential``, for code below ``models`` (saving) that
    must tell models apart; registered by ``irtool.models``."""
    return {**_NAMESPACES["keras"], **_NAMESPACES["keras.src.models.functional"]}[name]


def register_operation_reviver(reviver) -> None:
    """``reviver(class_name, config) -> class`` rebuilds raw operations (``keras.src.ops.*`` configs)."""
    _OPERATION_REVIVER[:] = [reviver]


def _public_tables():
    """``({class: keras_module}, {function: keras_module})`` for irtool's exported objects."""
    if not _PUBLIC:
        classes, functions = {}, {}
        for keras_module in _PRECEDENCE:
            for name, obj in _NAMESPACES.get(keras_module, {}).items():
                if isinstance(obj, type) and obj.__name__ == name:
                    classes.setdefault(obj, keras_module)
                elif isinstance(obj, types.FunctionType) and obj.__name__ == name:
                    functions.setdefault(obj, keras_module)
        _PUBLIC["classes"], _PUBLIC["functions"] = classes, functions
    return _PUBLIC["classes"], _PUBLIC["functions"]


# -- serialization ---------------------------------------------------------------------------
def serialize_keras_object(obj):
    """Keras 3's serialized form of ``obj``: plain values as they are, containers element by
    element, and objects as ``{"module", "class_name", "config", "registered_name"}`` (plus
    ``build_config``/``compile_config`` for built layers and compiled models)."""
    if obj is None or isinstance(obj, PLAIN_TYPES):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [serialize_keras_object(x) for x in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return {key: serialize_keras_object(value) for key, value in obj.items()}
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        return {
            "class_name": "__slice__",
            "config": {
                "start": serialize_keras_object(obj.start),
                "stop": serialize_keras_object(obj.stop),
                "step": serialize_keras_object(obj.step),
            },
        }
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    special = _serialize_value(obj)
    if special is not None:
        return special
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        return _serialize_function(obj)
    if not hasattr(obj, "get_config"):
        raise TypeError(
            f"Cannot serialize object {obj!r} of type {type(obj).__name__}. To be serializable, a class must "
            "implement the `get_config()` method."
        )
    config = obj.get_config()
    if not isinstance(config, dict):
        raise TypeError(f"The `get_config()` method of {obj!r} should return a dict. It returned: {config!r}")
    serialized = {**_class_identity(type(obj)), "config": serialize_keras_object(config)}
    order = ("module", "class_name", "config", "registered_name")
    serialized = {key: serialized[key] for key in order}
    get_build_config = getattr(obj, "get_build_config", None)
    build_config = get_build_config() if callable(get_build_config) else None
    if build_config is not None:
        serialized["build_config"] = serialize_keras_object(build_config)
    get_compile_config = getattr(obj, "get_compile_config", None)
    compile_config = get_compile_config() if callable(get_compile_config) else None
    if compile_config is not None:
        serialized["compile_config"] = serialize_keras_object(compile_config)
    return serialized


def _serialize_value(obj):
    """Tensors, arrays and NumPy scalars; ``None`` when ``obj`` is none of them."""
    if isinstance(obj, SymbolicTensor):
        history = obj._keras_history
        if history is not None:
            call, index = history
            history = [call.operation.name, call.index, index]
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": list(obj.shape), "dtype": obj.dtype, "keras_history": history},
        }
    if isinstance(obj, Variable):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray) and obj.ndim > 0:
        return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": obj.dtype.name}}
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.item()
    if isinstance(obj, np.dtype):
        return obj.name
    return None


def _class_identity(cls) -> dict:
    classes, _ = _public_tables()
    module = classes.get(cls)
    if module is not None and module.startswith("keras.src."):
        # Keras names classes it does not export (``keras.src...``) by their class name.
        return {"module": module, "class_name": cls.__name__, "registered_name": cls.__name__}
    if module is not None:
        return {"module": module, "class_name": cls.__name__, "registered_name": None}
    return {"module": cls.__module__, "class_name": cls.__name__, "registered_name": get_registered_name(cls)}


def _serialize_function(fn) -> dict:
    if fn.__name__ == "<lambda>":
        warnings.warn(
            "The object being serialized includes a `lambda`. This is unsafe: to load it again you will have to "
            "pass `safe_mode=False` to the loading function. Use named functions registered with "
            "`register_keras_serializable` instead.",
            stacklevel=3,
        )
        return {"class_name": "__lambda__", "config": {"value": list(dump_function(fn))}}
    _, functions = _public_tables()
    module = functions.get(fn)
    if module is not None:
        return {"module": module, "class_name": "function", "config": fn.__name__, "registered_name": fn.__name__}
    name = get_registered_name(fn)
    return {"module": fn.__module__, "class_name": "function", "config": name, "registered_name": name}


# -- deserialization -------------------------------------------------------------------------
def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object described by a Keras 3 config (the reverse of :func:`serialize_keras_object`).

    ``custom_objects`` maps names to custom classes or functions. With ``safe_mode=True`` (the
    default) a config that holds Python bytecode (a ``lambda``) is refused; the innermost
    ``SafeModeScope`` overrides the argument, as in Keras.
    """
    if not config_limits.is_reading():
        # The outermost call checks the whole config once (depth, size); the recursion below
        # and nested models' from_config then run inside that check.
        with config_limits.reading_config(config, "deserialize_keras_object"):
            return deserialize_keras_object(config, custom_objects, safe_mode, **kwargs)
    scoped = in_safe_mode()
    safe_mode = scoped if scoped is not None else safe_mode
    module_objects = kwargs.pop("module_objects", None)
    kind = kwargs.pop("kind", None)
    if kwargs:
        raise TypeError(f"deserialize_keras_object() got unexpected keyword arguments {sorted(kwargs)}")
    custom_objects = {**(custom_objects or {}), **scoped_custom_objects()}
    if config is None:
        return None
    if isinstance(config, str):
        named = get_registered_object(config, custom_objects, module_objects)
        if named is not None:
            return named() if module_objects is not None and isinstance(named, type) else named
        if module_objects is not None:
            raise ValueError(f"Could not interpret serialized {kind or 'object'}: {config!r}")
        return config
    if isinstance(config, (list, tuple)):
        return [deserialize_keras_object(x, custom_objects, safe_mode) for x in config]
    if isinstance(config, PLAIN_TYPES):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config!r}")
    if "class_name" not in config or "config" not in config:
        return {key: deserialize_keras_object(value, custom_objects, safe_mode) for key, value in config.items()}

    class_name = config["class_name"]
    inner = config["config"] if config["config"] is not None else {}
    special = _deserialize_special(class_name, inner, custom_objects, safe_mode)
    if special is not _NOT_SPECIAL:
        return special
    module = config.get("module")
    registered_name = config.get("registered_name") or class_name
    if class_name == "function":
        if not isinstance(inner, str):
            raise TypeError(f"Expected 'config' to be a function name (str). Full config: {config}")
        return _retrieve_function(inner, registered_name, module, custom_objects, config)
    if not isinstance(inner, dict):
        raise TypeError(f"Expected 'config' to be a dict for {class_name}, got {type(inner).__name__}: {config}")
    if class_name in _DTYPE_POLICIES and module in ("keras", "keras.dtype_policies", None):
        return inner.get("name")
    cls = _retrieve_class(class_name, registered_name, module, custom_objects, config, module_objects, kind)
    if isinstance(cls, types.FunctionType):
        return cls
    if not hasattr(cls, "from_config"):
        raise TypeError(
            f"Unable to reconstruct an instance of '{class_name}': the class has no `from_config()` method."
        )
    with CustomObjectScope(custom_objects), SafeModeScope(safe_mode):
        try:
            instance = cls.from_config(inner)
        except TypeError as error:
            if getattr(error, "_irtool_unknown_object", False):
                raise
            raise TypeError(
                f"{cls.__name__} could not be deserialized from its config: {error}\nMake sure that `from_config()` "
                "deserializes the Python objects (layers, models...) that `get_config()` returns.\n"
                f"config={config}"
            ) from error
        build_config = config.get("build_config")
        if build_config and not getattr(instance, "built", True) and hasattr(instance, "build_from_config"):
            instance.build_from_config(build_config)
            instance.built = True
        compile_config = config.get("compile_config")
        if compile_config and hasattr(instance, "compile_from_config"):
            instance.compile_from_config(compile_config)
    return instance


_NOT_SPECIAL = object()


class TensorReference:
    """A ``__keras_tensor__`` read from a config: the tensor that output ``keras_history =
    [layer_name, node_index, tensor_index]`` produced. Functional ``from_config`` swaps it for
    the tensor of the rebuilt model."""

    __slots__ = ("shape", "dtype", "keras_history")

    def __init__(self, shape, dtype, keras_history):
        self.shape = None if shape is None else tuple(shape)
        self.dtype = dtype
        self.keras_history = keras_history

    def __repr__(self) -> str:
        return f"<TensorReference shape={self.shape}, dtype={self.dtype}, keras_history={self.keras_history}>"


def _deserialize_special(class_name, inner, custom_objects, safe_mode):
    if class_name == "__keras_tensor__":
        return TensorReference(inner.get("shape"), inner.get("dtype"), inner.get("keras_history"))
    if class_name in ("__numpy__", "__tensor__"):
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(
            *(deserialize_keras_object(inner[k], custom_objects, safe_mode) for k in ("start", "stop", "step"))
        )
    if class_name == "__lambda__":
        if safe_mode is not False:
            raise ValueError(
                "Requested the deserialization of a Python `lambda` stored as bytecode in the config. Loading it would "
                "run code from the file, so it is refused by default. If you trust the source, pass "
                "`safe_mode=False` to the loading function."
            )
        return load_function(inner["value"])
    return _NOT_SPECIAL


def _unknown(kind: str, name: str, module, config, message: str | None = None) -> TypeError:
    where = f" (module '{module}')" if module else ""
    if message is None:
        message = (
            f"Pass it in custom_objects (custom_objects={{'{name}': {name}}}) or register it with "
            "@irtool.saving.register_keras_serializable()."
        )
    error = TypeError(f"Unknown {kind}: '{name}'{where}. {message} Full object config: {config}")
    error._irtool_unknown_object = True  # not re-wrapped by the enclosing objects' from_config
    return error


def _keras_namespace(module) -> str | None:
    """The Keras public module a config's ``module`` stands for (``keras.src.layers.core.dense``
    -> ``keras.layers``), or ``None`` when it is not a Keras (or irtool) built-in module."""
    if not module:
        return None
    if module in _KINDS or module == "keras.ops":
        return module
    parts = module.split(".")
    if parts[0] == "keras" and len(parts) > 2 and parts[1] == "src":
        return _SRC_PACKAGES.get(parts[2])
    if parts[0] == "irtool" and len(parts) > 1:
        return _SRC_PACKAGES.get(parts[1]) or ("keras.layers" if parts[1] == "layers" else None)
    return None


def _retrieve_class(class_name, registered_name, module, custom_objects, config, module_objects=None, kind=None):
    for name in dict.fromkeys((registered_name, class_name)):
        found = get_registered_object(name, custom_objects, module_objects)
        if found is not None:
            return found
    if module and module.startswith("keras.src.ops.") or module == "irtool.ops":
        (reviver,) = _OPERATION_REVIVER
        return reviver(class_name, config)
    if class_name in _MODEL_CLASSES and (
        module in (None, "keras", "keras.models") or module.startswith(("keras.src.models", "irtool.models"))
    ):
        return model_class(class_name)
    namespace = _keras_namespace(module)
    if namespace is not None and namespace != "keras.ops":
        found = _NAMESPACES.get(namespace, {}).get(class_name)
        if isinstance(found, type):
            return found
        if namespace == "keras.layers" and class_name in _BACKEND_LAYERS:
            raise _unknown("layer", class_name, module, config, _backend_layer_message(class_name))
        message = (
            "irtool does not implement this Keras class; a custom class of that name can be passed in custom_objects."
        )
        raise _unknown(kind or _KINDS.get(namespace, "object"), class_name, module, config, message)
    raise _unknown(kind or "object", class_name, module, config)


def _backend_layer_message(class_name: str) -> str:
    return (
        f"A Keras {class_name} runs {_BACKEND_LAYERS[class_name]}, backend code that irtool cannot run or "
        "export. Rebuild that part of the model from Keras layers (or an irtool custom layer written in "
        "irtool.ops, passed in custom_objects), or export the model to ONNX from its own backend."
    )


def _retrieve_function(name, registered_name, module, custom_objects, config):
    for key in dict.fromkeys((registered_name, name)):
        found = get_registered_object(key, custom_objects)
        if found is not None:
            return found
    namespace = _keras_namespace(module)
    if namespace in ("keras.activations", "keras.ops", "keras.losses", "keras.metrics"):
        found = _NAMESPACES.get(namespace, {}).get(name)
        if callable(found) and not isinstance(found, type):
            return found
        raise _unknown("function", name, module, config, "irtool does not implement this Keras function.")
    raise _unknown("function", name, module, config)


def get_from_identifier(identifier, module_objects: dict, kind: str):
    """The ``get`` of Keras' regularizers/constraints modules: ``None``, a name, a config dict, a
    class (instantiated with its defaults), an instance or a callable; else a ``ValueError``."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize_keras_object(identifier, module_objects=module_objects)
    elif isinstance(identifier, str):
        obj = module_objects.get(identifier)
    else:
        obj = identifier
    if isinstance(obj, type):
        obj = obj()
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret {kind} identifier: {identifier}")


register_namespace("keras.ops", vars(ops_namespace))
