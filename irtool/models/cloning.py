"""``clone_model``: the same architecture with new layers (freshly initialized weights).

A functional model is cloned by replaying its layer calls, in graph order, on new inputs:
each layer is replaced by ``clone_function(layer)`` (by default a copy made from its config),
a layer shared by several calls is cloned once, and raw ops (``x + y``) are simply called
again. A Sequential model is cloned layer by layer. Keras 3's signature and behaviour.
"""

from __future__ import annotations

from irtool.ir import tree
from irtool.layers.input_layer import Input, InputLayer
from irtool.layers.layer import Layer
from irtool.models.functional import Functional
from irtool.models.operation_config import op_functions
from irtool.models.sequential import Sequential
from irtool.ops.core import SymbolicTensor
from irtool.ops.operation import RawOperation
from irtool.serialization.keras_objects import deserialize_keras_object, serialize_keras_object


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """Clone a Functional or Sequential model: new layers, new weights, same structure.

    Args:
        model: the model to clone.
        input_tensors: optional symbolic tensors (the structure of ``model.input``) to build the
            clone on; new ``Input``\\s of the same shapes otherwise.
        clone_function: ``layer -> new layer``, called once per layer (default: a copy from
            ``layer.get_config()``). Return the layer itself to share it with the original.
        call_function: functional models only: ``call_function(layer, *args, **kwargs)``
            replaces ``layer(*args, **kwargs)`` when the clone is built.
        recursive: clone nested models layer by layer with the same ``clone_function``
            (otherwise ``clone_function`` receives the nested model itself).

    >>> import irtool as keras
    >>> from irtool import layers
    >>> model = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="d")])
    >>> clone = clone_model(model)
    >>> [layer.name for layer in clone.layers], clone.layers[0] is model.layers[0]
    (['d'], False)
    """
    cache = kwargs.pop("cache", None)
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s): {tuple(kwargs)}")
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ValueError(
                "`call_function` argument is not supported with Sequential models. In a Sequential model, layers "
                "aren't called at model-construction time (they're merely listed). Use `call_function` with "
                f"Functional models only. Received model of type '{type(model).__name__}', with "
                f"call_function={call_function}"
            )
        wrapped = _wrap_clone_function(clone_function, call_function, recursive, cache)
        return _clone_sequential(model, wrapped, input_tensors)
    if isinstance(model, Functional):
        wrapped = _wrap_clone_function(clone_function, call_function, recursive, cache)
        return _clone_functional(model, wrapped, input_tensors, call_function)
    if clone_function is not None or input_tensors is not None:
        raise ValueError(
            "Arguments `clone_function` and `input_tensors` are only supported for Sequential models or Functional "
            f"models. Received model of type '{type(model).__name__}', with clone_function={clone_function} and "
            f"input_tensors={input_tensors}"
        )
    if call_function is not None:
        raise ValueError(
            "Argument `call_function` is only supported for Functional models. Received model of type "
            f"'{type(model).__name__}', with call_function={call_function}"
        )

    return deserialize_keras_object(serialize_keras_object(model), custom_objects={type(model).__name__: type(model)})


def _copy_from_config(layer):
    return type(layer).from_config(layer.get_config())


def _wrap_clone_function(clone_function, call_function, recursive, cache):
    """One clone per layer (shared layers stay shared), nested models recursed into on request."""
    clone_function = clone_function or _copy_from_config
    if not callable(clone_function):
        raise ValueError(
            f"Expected `clone_function` argument to be a callable. Received: clone_function={clone_function}"
        )
    cache = {} if cache is None else cache

    def wrapped(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if recursive and isinstance(layer, Sequential):
            clone = clone_model(layer, clone_function=clone_function, recursive=True, cache=cache)
        elif recursive and isinstance(layer, Functional):
            clone = clone_model(
                layer, clone_function=clone_function, call_function=call_function, recursive=True, cache=cache
            )
        else:
            clone = clone_function(layer)
        cache[id(layer)] = clone
        return clone

    return wrapped


def _clone_sequential(model: Sequential, clone_function, input_tensors):
    new_layers = [clone_function(layer) for layer in model.layers]
    reference = model._input_layer
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, SymbolicTensor):
            raise ValueError(f"Argument `input_tensors` must be a KerasTensor. Received invalid value: {input_tensors}")
        new_layers = [_input_layer_of(input_tensors, reference)] + new_layers
    elif reference is not None:
        new_layers = [
            InputLayer(
                batch_shape=reference.batch_shape,
                dtype=reference.dtype,
                name=reference.name,
                optional=reference.optional,
            )
        ] + new_layers
    clone = Sequential(new_layers, name=model.name, trainable=model.trainable)
    _copy_compile_state(model, clone)
    return clone


def _input_layer_of(tensor: SymbolicTensor, reference):
    history = tensor._keras_history
    if history is not None and isinstance(history[0].operation, InputLayer):
        return history[0].operation
    name = reference.name if reference is not None else None
    return InputLayer(batch_shape=tensor.shape, dtype=tensor.dtype, name=name)


def _clone_functional(model: Functional, clone_function, input_tensors, call_function):
    if input_tensors is not None:
        if not all(isinstance(x, SymbolicTensor) for x in tree.flatten(input_tensors)):
            raise ValueError(
                f"All entries in `input_tensors` must be KerasTensors. Received invalid values: {input_tensors}"
            )
        if len(tree.flatten(input_tensors)) != len(model.inputs):
            raise ValueError(
                "`input_tensors` must have the same structure as model.input\n"
                f"Reference structure: {model.input}\nReceived structure: {input_tensors}"
            )
        new_inputs = input_tensors
    else:
        names = {id(t): call.operation.name for t, call in ((t, model._input_calls[id(t)]) for t in model.inputs)}
        new_inputs = tree.map_structure(
            lambda t: Input(batch_shape=t.shape, dtype=t.dtype, name=names[id(t)]), model._inputs_struct
        )
    mapping = {id(old): new for old, new in zip(model.inputs, tree.flatten(new_inputs))}
    input_call_ids = {id(call) for call in model._input_calls.values()}

    def swap(x):
        if isinstance(x, SymbolicTensor):
            return mapping[id(x)]
        return x

    for depth in sorted(model._nodes_by_depth, reverse=True):
        for call in sorted(model._nodes_by_depth[depth], key=_call_order(model)):
            if id(call) in input_call_ids or call.is_input:
                continue
            kwargs = dict(call.kwargs)
            mask = kwargs.get("mask")
            if mask is not None and not all(
                id(m) in mapping for m in tree.flatten(mask) if isinstance(m, SymbolicTensor)
            ):
                del kwargs["mask"]  # the mask came with the input tensor; the clone recomputes it
            args = tree.map_structure(swap, list(call.args))
            kwargs = tree.map_structure(swap, kwargs)
            operation = call.operation
            if isinstance(operation, RawOperation):
                outputs = _replay_raw_operation(operation, args, kwargs)
            else:
                layer = clone_function(operation)
                if not isinstance(layer, Layer):
                    raise ValueError(
                        f"`clone_function` must return a layer. It returned {layer!r} for layer '{operation.name}'."
                    )
                outputs = call_function(layer, *args, **kwargs) if call_function else layer(*args, **kwargs)
            for old, new in zip(call.output_tensors, tree.flatten(outputs)):
                mapping[id(old)] = new
    outputs = tree.map_structure(lambda t: mapping[id(t)], model._outputs_struct)
    clone = Functional(new_inputs, outputs, name=model.name, trainable=model.trainable)
    _copy_compile_state(model, clone)
    return clone


def _call_order(model):
    # Within one depth, keep the original model's operation order (ties broken by call index).
    position = {id(op): i for i, op in enumerate(model.operations)}
    return lambda call: (position.get(id(call.operation), len(position)), call.index)


def _replay_raw_operation(operation: RawOperation, args, kwargs):
    fn = op_functions().get(operation.class_name)
    if fn is None:
        raise ValueError(
            f"Cannot clone operation '{operation.name}': irtool has no op of class {operation.class_name}."
        )
    return fn(*args, **kwargs)


def _copy_compile_state(model, clone) -> None:
    if getattr(model, "compiled", False) and hasattr(model, "get_compile_config"):
        config = model.get_compile_config()
        if config:
            clone.compile_from_config(config)
