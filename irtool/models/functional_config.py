"""Functional and Sequential model configs in Keras 3's format, and JSON round trips.

A functional config lists the model's operations in ``model.operations`` order, each as its
serialized form plus ``name`` and ``inbound_nodes``: one node per call of the operation
inside the model, holding the call's arguments with every tensor replaced by
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
[operation_name, node_index, tensor_index]}}``. ``input_layers``/``output_layers`` give the
model's input and output tensors the same way, in the model's own structure (a single
``[name, node, index]``, a list or a dict).

Node indices count only the calls that belong to the model. Keras' functional models own a
call of their own (inputs to outputs) before any use in another model, so a nested
``Functional`` is referenced one node later in ``input_layers``/``output_layers`` (but not in
node arguments); irtool writes and reads that offset exactly as Keras does.

Rebuilding creates every operation first, then replays the nodes in the order of the layer
list, deferring a node until the tensors it reads exist (a shared layer may be called at
several depths), as Keras' ``functional_from_config`` does.

The model classes import this module, so it knows them only by ``_model_kind`` (see
``Model``): a model passed in or deserialized is read through its attributes, never
checked with ``isinstance``.
"""

from __future__ import annotations

import json

import numpy as np

from irtool.ir import tree
from irtool.layers.layer import Layer, dtype_policy_config
from irtool.models.operation_config import raw_operation_config
from irtool.ops.core import SymbolicTensor
from irtool.ops.operation import Operation, RawOperation
from irtool.serialization import config_limits
from irtool.serialization.config_limits import check_json_text
from irtool.serialization.keras_objects import TensorReference, deserialize_keras_object, serialize_keras_object
from irtool.serialization.object_registration import CustomObjectScope
from irtool.serialization.python_code import in_safe_mode

_FUNCTIONAL_KEYS = ("name", "layers", "input_layers", "output_layers")


class _NodeNotReady(Exception):
    """A node reads a tensor whose producing call has not been replayed yet."""


# -- writing -------------------------------------------------------------------------------------
def functional_get_config(model) -> dict:
    """Keras 3's config of a functional model (JSON-serializable)."""
    input_calls = model._input_calls
    own_calls = set(model._calls) | set(input_calls.values())
    node_index: dict = {}
    for operation in model.operations:
        kept = [call for call in operation._inbound_nodes if call in own_calls]
        for i, call in enumerate(kept):
            node_index[call] = i

    def history(tensor, what: str) -> tuple:
        call = input_calls.get(id(tensor))
        if call is not None:
            return call, 0
        if tensor._keras_history is None or tensor._keras_history[0] not in node_index:
            raise ValueError(
                f"Cannot serialize model '{model.name}': {what} {tensor!r} is not produced by an operation of the "
                "model."
            )
        return tensor._keras_history

    def tensor_config(tensor, what: str) -> dict:
        call, index = history(tensor, what)
        return {
            "class_name": "__keras_tensor__",
            "config": {
                "shape": list(tensor.shape),
                "dtype": tensor.dtype,
                "keras_history": [call.operation.name, node_index[call], index],
            },
        }

    def node_config(call, args, kwargs, where: str) -> dict:
        kwargs = dict(kwargs)
        mask = kwargs.get("mask")
        if mask is not None and not all(_referable(m, input_calls, node_index) for m in _tensors(mask)):
            # A mask the layer received from its input's ``_keras_mask`` (computed inside the
            # producing call): Keras recomputes it when the model is rebuilt.
            del kwargs["mask"]

        def convert(x):
            return tensor_config(x, f"an input of {where}") if isinstance(x, SymbolicTensor) else x

        return {
            "args": serialize_keras_object(tree.map_structure(convert, list(args))),
            "kwargs": serialize_keras_object(tree.map_structure(convert, kwargs)),
        }

    layers = []
    for operation in model.operations:
        calls = [call for call in operation._inbound_nodes if call in own_calls]
        where = f"operation '{operation.name}'"
        if isinstance(operation, RawOperation):
            entry, args, kwargs = raw_operation_config(operation, calls[0])
            nodes = [node_config(calls[0], args, kwargs, where)]
        else:
            entry = serialize_keras_object(operation)
            nodes = [node_config(call, call.args, call.kwargs, where) for call in calls if not call.is_input]
        entry["name"] = operation.name
        entry["inbound_nodes"] = nodes
        layers.append(entry)

    def endpoint(tensor, what: str) -> list:
        call, index = history(tensor, what)
        offset = 1 if _owns_first_call(call.operation) else 0
        return [call.operation.name, node_index[call] + offset, index]

    config = {"name": model.name, "trainable": model.trainable, "layers": layers}
    config["input_layers"] = _endpoint_structure(
        tree.map_structure(lambda t: endpoint(t, "input"), model._inputs_struct)
    )
    config["output_layers"] = _endpoint_structure(
        tree.map_structure(lambda t: endpoint(t, "output"), model._outputs_struct)
    )
    return config


def _owns_first_call(operation) -> bool:
    """A functional model (not a Sequential one): Keras counts its own call (inputs to
    outputs) as its node 0, so ``input_layers``/``output_layers`` name it one node later."""
    return getattr(operation, "_model_kind", None) == "functional"


def _tensors(value) -> list:
    return [x for x in tree.flatten(value) if isinstance(x, SymbolicTensor)]


def _referable(tensor, input_calls, node_index) -> bool:
    return id(tensor) in input_calls or (tensor._keras_history is not None and tensor._keras_history[0] in node_index)


def _endpoint_structure(structure):
    # Leaves are [name, node, index] lists. Containers keep their type, as in Keras' config: a
    # model with tuple outputs has tuple `output_layers`, so from_config gives tuple outputs again
    # (JSON writes tuples as lists, so a JSON round trip gives lists, in Keras too).
    if isinstance(structure, dict):
        return {k: _endpoint_structure(v) for k, v in structure.items()}
    if isinstance(structure, tuple) and not _is_leaf(structure):
        return tuple(_endpoint_structure(v) for v in structure)
    if isinstance(structure, list) and not _is_leaf(structure):
        return [_endpoint_structure(v) for v in structure]
    return list(structure) if _is_leaf(structure) else structure


def _is_leaf(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str)


def sequential_get_config(model) -> dict:
    """Keras 3's Sequential config: the layers (with the InputLayer when there is one) and
    ``build_input_shape``."""
    layers = ([model._input_layer] if model._input_layer is not None else []) + list(model._stack)
    config = {"name": model.name, "trainable": model.trainable, "dtype": dtype_policy_config(model.dtype)}
    config["layers"] = [serialize_keras_object(layer) for layer in layers]
    if model.built and model._input_layer is not None:
        config["build_input_shape"] = list(model._input_layer.batch_shape)
    return config


# -- reading -------------------------------------------------------------------------------------
def model_from_config(cls, config: dict, custom_objects=None):
    """``Model.from_config``: a functional config becomes ``cls(inputs=..., outputs=...)`` (a
    ``Functional`` when ``cls`` is ``Model``: see ``Model.__new__``), anything else goes to
    ``cls(**config)`` like a layer."""
    if not config_limits.is_reading():
        with config_limits.reading_config(config, f"{cls.__name__}.from_config"):
            return model_from_config(cls, config, custom_objects)
    if all(key in config for key in _FUNCTIONAL_KEYS):
        with CustomObjectScope(custom_objects or {}):
            return functional_from_config(cls, config)
    with CustomObjectScope(custom_objects or {}):
        return Layer.from_config.__func__(cls, config)


def functional_from_config(cls, config: dict, custom_objects=None):
    """Rebuild a functional model from :func:`functional_get_config`'s output (or Keras')."""
    safe_mode = in_safe_mode()
    safe_mode = True if safe_mode is None else safe_mode
    config = dict(config)
    layer_configs = config.pop("layers")
    inputs_config = config.pop("input_layers")
    outputs_config = config.pop("output_layers")
    name = config.pop("name", None)
    trainable = config.pop("trainable", True)

    created: dict = {}
    pending: dict = {}
    for layer_data in layer_configs:
        layer_name = layer_data.get("name") or layer_data.get("config", {}).get("name")
        operation = deserialize_keras_object(
            _with_legacy_module(layer_data), custom_objects=custom_objects, safe_mode=safe_mode, kind="layer"
        )
        if not isinstance(operation, Operation):
            raise ValueError(
                f"Unexpected object from deserialization of layer '{layer_name}': expected a layer or operation, "
                f"got {type(operation).__name__}."
            )
        created[layer_name] = operation
        pending[layer_name] = list(layer_data.get("inbound_nodes") or [])

    while any(pending.values()):
        progressed = False
        for layer_data in layer_configs:
            layer_name = layer_data.get("name") or layer_data.get("config", {}).get("name")
            nodes = pending[layer_name]
            while nodes:
                try:
                    args, kwargs = _node_arguments(nodes[0], created, custom_objects, safe_mode)
                except _NodeNotReady:
                    break
                created[layer_name](*args, **kwargs)
                nodes.pop(0)
                progressed = True
        if not progressed:
            unresolved = {n: len(v) for n, v in pending.items() if v}
            raise ValueError(
                "Invalid Functional model configuration. The graph of the Functional model either has loops or "
                f"disconnected nodes. These layers' nodes could not be resolved (count per layer): {unresolved}"
            )

    def endpoint(leaf):
        layer_name, node, index = leaf[0], leaf[1], leaf[2]
        operation = created.get(layer_name)
        if operation is None:
            raise ValueError(f"Invalid model configuration: unknown layer '{layer_name}' in inputs/outputs.")
        if _owns_first_call(operation):
            node -= 1
        return _output_tensor(operation, node, index, strict=True)

    inputs = _map_leaves(endpoint, inputs_config)
    outputs = _map_leaves(endpoint, outputs_config)
    return cls(inputs=inputs, outputs=outputs, name=name, trainable=trainable, **config)


def _with_legacy_module(layer_data: dict) -> dict:
    # Keras 2 (tf.keras) configs name built-in layers without a module.
    if "module" in layer_data:
        return layer_data
    return {**layer_data, "module": "keras.layers", "registered_name": None}


def _map_leaves(fn, structure):
    if _is_leaf(structure):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: _map_leaves(fn, v) for k, v in structure.items()}
    if isinstance(structure, tuple):
        return tuple(_map_leaves(fn, v) for v in structure)
    return [_map_leaves(fn, v) for v in structure]


def _output_tensor(operation, node: int, index: int, strict: bool = False):
    calls = operation._inbound_nodes
    if node >= len(calls) or node < 0:
        if strict:
            raise ValueError(
                f"Invalid model configuration: layer '{operation.name}' has no node {node} (it was called "
                f"{len(calls)} times)."
            )
        raise _NodeNotReady
    tensors = calls[node].output_tensors
    if index >= len(tensors):
        raise ValueError(
            f"Invalid model configuration: layer '{operation.name}' node {node} has {len(tensors)} outputs, "
            f"requested output {index}."
        )
    return tensors[index]


def _node_arguments(node_data, created: dict, custom_objects, safe_mode) -> tuple:

    if isinstance(node_data, list):
        # Keras 2's node format: [[layer_name, node_index, tensor_index, kwargs?], ...]
        tensors, kwargs = [], {}
        for entry in node_data:
            tensors.append(_lookup(created, entry[0], entry[1], entry[2]))
            if len(entry) > 3:
                kwargs = entry[3]
        return [tensors[0] if len(tensors) == 1 else tensors], kwargs
    args = deserialize_keras_object(node_data.get("args", []), custom_objects=custom_objects, safe_mode=safe_mode)
    kwargs = deserialize_keras_object(node_data.get("kwargs", {}), custom_objects=custom_objects, safe_mode=safe_mode)

    def resolve(x):
        if isinstance(x, TensorReference):
            if x.keras_history is None:
                raise ValueError(f"Invalid model configuration: a node argument {x!r} has no keras_history.")
            return _lookup(created, *x.keras_history)
        return x

    args = [_map_values(resolve, a) for a in (args or [])]
    kwargs = {k: _map_values(resolve, v) for k, v in (kwargs or {}).items()}
    return args, kwargs


def _map_values(fn, value):
    if isinstance(value, list):
        return [_map_values(fn, v) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_values(fn, v) for v in value)
    if isinstance(value, dict):
        return {k: _map_values(fn, v) for k, v in value.items()}
    return fn(value)


def _lookup(created: dict, layer_name: str, node: int, index: int):
    operation = created.get(layer_name)
    if operation is None:
        raise ValueError(f"Invalid model configuration: a node reads the output of unknown layer '{layer_name}'.")
    return _output_tensor(operation, node, index)


def sequential_from_config(cls, config: dict, custom_objects=None):
    """Rebuild a Sequential model from :func:`sequential_get_config`'s output (or Keras')."""

    if not config_limits.is_reading():
        with config_limits.reading_config(config, f"{cls.__name__}.from_config"):
            return sequential_from_config(cls, config, custom_objects)
    if "name" not in config or "layers" not in config:
        raise ValueError(
            "A Sequential model configuration must be a dictionary containing the 'name' and 'layers' keys. "
            f"Received: config={config}"
        )
    safe_mode = in_safe_mode()
    model = cls(name=config["name"], trainable=config.get("trainable", True))
    with CustomObjectScope(custom_objects or {}):
        for layer_config in config["layers"]:
            layer = deserialize_keras_object(
                _with_legacy_module(layer_config),
                custom_objects=custom_objects,
                safe_mode=True if safe_mode is None else safe_mode,
                kind="layer",
            )
            model.add(layer, rebuild=False)
    model._maybe_rebuild()
    shape = config.get("build_input_shape")
    if not model.built and isinstance(shape, (list, tuple)) and shape:
        model.build(tuple(shape))
    return model


# -- JSON ----------------------------------------------------------------------------------------
def model_to_json(model, **kwargs) -> str:
    """``model.to_json()``: the serialized model (``serialize_keras_object``) as a JSON string."""

    return json.dumps(serialize_keras_object(model), default=_json_default, **kwargs)


def _json_default(obj):
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable: {obj!r}")


def model_from_json(json_string: str, custom_objects=None):
    """A model from ``model.to_json()``'s string (or Keras'): same architecture, new weights.

    >>> import irtool as keras
    >>> from irtool import layers
    >>> model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    >>> model_from_json(model.to_json()).output_shape
    (None, 2)
    """

    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json expects a JSON string. Received: {type(json_string).__name__}")
    check_json_text(json_string, "model_from_json")
    try:
        config = json.loads(json_string)
    except json.JSONDecodeError as error:
        raise ValueError(f"model_from_json: the string is not valid JSON ({error}).") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "model_from_json expects the JSON of a serialized model (an object with 'class_name' and 'config'). "
            f"Received: {str(config)[:200]}"
        )
    return deserialize_keras_object(config, custom_objects=custom_objects)
