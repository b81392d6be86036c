"""Configs of raw ops used at a model's top level (``x + y``, ``ops.reshape(x, ...)``).

Keras 3 records such a call as an operation of class ``Add``, ``Reshape``... and serializes it
like a layer: ``{"module": "keras.src.ops.numpy", "class_name": "Reshape", "config": {"name":
"reshape", "newshape": [-1, 2]}, "registered_name": "Reshape"}``, whose node holds the call's
tensor arguments. The op's other arguments (its "constructor" arguments in Keras) are in the
config. irtool records these calls as ``RawOperation``\\s of the same class names, so the two
forms map one to one: :func:`raw_operation_config` splits a recorded call into config and call
arguments, and :class:`RevivedOperation` replays a config by calling the irtool op.
"""

from __future__ import annotations

import inspect

from irtool import ops
from irtool.ir import tree
from irtool.ops.core import SymbolicTensor
from irtool.ops.operation import Operation, RawOperation, raw_operation_class, record_call
from irtool.serialization.keras_objects import register_operation_reviver

# Keras' call arguments where they are not just the first parameter (or ``x1, x2``).
_CALL_PARAMS = {
    "BatchNorm": ("x", "mean", "variance", "offset", "scale"),
    "Conv": ("inputs", "kernel"),
    "ConvTranspose": ("inputs", "kernel"),
    "DepthwiseConv": ("inputs", "kernel"),
    "SeparableConv": ("inputs", "depthwise_kernel", "pointwise_kernel"),
    "GetItem": ("x", "key"),
    "Take": ("x", "indices"),
    "Where": ("condition", "x1", "x2"),
    "LayerNorm": ("x", "gamma", "beta"),
    "RMSNorm": ("x", "scale"),
    "Pad": ("x", "constant_values"),
    "Einsum": ("operands",),
}
# irtool-only tensor arguments: passed in the node's kwargs when given.
_EXTRA_CALL_PARAMS = ("bias",)
# Keras constructor arguments irtool's ops do not take, with the only value irtool supports.
_KERAS_ONLY_DEFAULTS = {"LayerNorm": {"rms_scaling": False}, "OneHot": {"sparse": False}, "Round": {"decimals": 0}}
_FAMILIES = {
    "keras.src.ops.nn": (
        "AdaptiveAveragePool AdaptiveMaxPool AveragePool BatchNorm Conv ConvTranspose DepthwiseConv Elu Gelu HardSigmoid LayerNorm LeakyRelu LogSoftmax "
        "MaxPool Moments Normalize OneHot RMSNorm Relu Relu6 Selu SeparableConv Sigmoid Silu Softmax Softplus Softsign "
        "Celu Glu HardShrink HardSilu HardTanh LogSigmoid SoftShrink SparsePlus SparseSigmoid Sparsemax Squareplus "
        "TanhShrink Threshold DotProductAttention"
    ).split(),
    "keras.src.ops.core": ["Cast", "Unstack", "StopGradient"],
    "keras.src.ops.math": ["Erf", "STFT", "Rsqrt", "Logsumexp", "TopK"],
    "keras.src.ops.image": ["Resize"],
    "irtool.ops": ["CenterCrop", "GruOp", "LstmOp", "RecurrentOp", "SimpleRnnOp", "Upsample"],
}
_MODULE_OF = {name: module for module, names in _FAMILIES.items() for name in names}

_OPS: dict = {}


def op_functions() -> dict:
    """``{Keras op class name: irtool.ops function}`` for every op recorded at the top level."""
    if not _OPS:
        for name in dir(ops):
            fn = getattr(ops, name)
            op_class = getattr(fn, "_keras_op_class", None)
            if op_class is not None and fn.__name__ == name:
                _OPS.setdefault(op_class, fn)
    return _OPS


def _call_params(class_name: str, params: list) -> tuple:
    if class_name in _CALL_PARAMS:
        return _CALL_PARAMS[class_name]
    if params[:2] == ["x1", "x2"]:
        return ("x1", "x2")
    return tuple(params[:1])


def raw_operation_config(op: RawOperation, call) -> tuple:
    """``(entry, args, kwargs)`` for one recorded call of a raw op: ``entry`` is its serialized
    form without nodes, ``args``/``kwargs`` the call arguments Keras keeps in the node."""
    class_name = op.class_name
    fn = op_functions().get(class_name)
    if fn is None:
        raise ValueError(f"Cannot serialize operation '{op.name}': irtool has no op of class {class_name}.")
    signature = inspect.signature(fn.__wrapped__)
    bound = signature.bind(*call.args, **call.kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    names = list(signature.parameters)
    call_names = _call_params(class_name, names)
    if class_name in _MODULE_OF and _MODULE_OF[class_name] == "irtool.ops":
        # irtool-only ops: whatever holds tensors is a call argument.
        call_names = tuple(n for n in names if _holds_tensor(arguments.get(n)))
    args = []
    for name in call_names:
        value = arguments.pop(name, None)
        if signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        else:
            args.append(value)
    while args and args[-1] is None and len(args) > 1:
        args.pop()  # trailing optional tensors left out, as a Keras call would
    kwargs = {}
    for name in _EXTRA_CALL_PARAMS:
        value = arguments.pop(name, None)
        if value is not None:
            kwargs[name] = value
    extra = arguments.pop("kwargs", None)
    if extra:
        raise ValueError(
            f"Cannot serialize operation '{op.name}' ({class_name}): unexpected arguments {sorted(extra)}."
        )
    for name, value in arguments.items():
        if _holds_tensor(value):
            raise ValueError(
                f"Cannot serialize operation '{op.name}' ({class_name}): its argument `{name}` is a tensor, which "
                "Keras' op configs cannot hold. Wrap the computation in a layer."
            )
    config = {"name": op.name, **arguments, **_KERAS_ONLY_DEFAULTS.get(class_name, {})}
    module = _MODULE_OF.get(class_name, "keras.src.ops.numpy")
    entry = {"module": module, "class_name": class_name, "config": config, "registered_name": class_name}
    return entry, args, kwargs


def _holds_tensor(value) -> bool:
    return any(isinstance(x, SymbolicTensor) for x in tree.flatten(value))


class RevivedOperation:
    """A raw op rebuilt from its config: calling it on tensors runs the irtool op with the
    stored arguments and records the call under the stored name (``add``, ``reshape_1``...).

    A mixin: each revived op is an instance of :func:`revived_class` ``(class_name)``, a subclass
    of this and of the Keras-named ``RawOperation`` class, so it reads as ``Add`` like the op
    it was saved from."""

    def __init__(self, name: str, function, arguments: dict):
        Operation.__init__(self, name=name)
        self._function = function
        self._arguments = arguments

    def __call__(self, *args, **kwargs):
        fn = self._function.__wrapped__
        signature = inspect.signature(fn)
        call_names = _call_params(self.class_name, list(signature.parameters))
        values = dict(self._arguments)
        if call_names == ("operands",):
            return record_call(self, fn, (values.pop("subscripts"), *args), {**values, **kwargs})
        if len(args) > len(call_names):
            raise ValueError(
                f"Operation '{self.name}' ({self.class_name}) takes {len(call_names)} tensor arguments "
                f"{list(call_names)}, received {len(args)}."
            )
        values.update(zip(call_names, args))
        values.update(kwargs)
        if self.class_name == "GetItem" and isinstance(values.get("key"), list):
            values["key"] = tuple(values["key"])  # JSON turned the index tuple into a list
        # Recorded as a full positional call, so the config can be written again from it.
        bound = signature.bind(**values)
        bound.apply_defaults()
        return record_call(self, fn, bound.args, bound.kwargs)


_REVIVED_CLASSES: dict[str, type] = {}


def revived_class(class_name: str) -> type:
    """The class of revived ops of Keras' class ``class_name`` (one per name, named like it)."""
    cls = _REVIVED_CLASSES.get(class_name)
    if cls is None:
        bases = (RevivedOperation, raw_operation_class(class_name))
        cls = type(class_name, bases, {"__module__": __name__, "__qualname__": class_name})
        _REVIVED_CLASSES[class_name] = cls
    return cls


def _as_tuples(value):
    """Lists read from JSON back to the tuples irtool's ops take for axes and shapes."""
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    return value


def revived_operation_class(class_name: str, full_config: dict):
    """A class whose ``from_config`` rebuilds the op ``class_name`` (raises when irtool lacks it)."""
    fn = op_functions().get(class_name)
    if fn is None:
        error = TypeError(
            f"Unknown operation: '{class_name}' (module '{full_config.get('module')}'): irtool has no such op. "
            f"Full object config: {full_config}"
        )
        error._irtool_unknown_object = True
        raise error

    class Reviver:
        @staticmethod
        def from_config(config: dict) -> RevivedOperation:
            config = dict(config)
            name = config.pop("name", None)
            params = inspect.signature(fn.__wrapped__).parameters
            for key, supported in _KERAS_ONLY_DEFAULTS.get(class_name, {}).items():
                value = config.pop(key, supported)
                if value != supported:
                    raise ValueError(
                        f"Operation '{name}' ({class_name}): irtool only supports {key}={supported!r}. "
                        f"Received: {key}={value!r}"
                    )
            unknown = [k for k in config if k not in params]
            if unknown:
                raise ValueError(
                    f"Operation '{name}' ({class_name}): unexpected config arguments {unknown}; irtool's op takes "
                    f"{list(params)}."
                )
            arguments = {k: _as_tuples(v) for k, v in config.items()}
            return revived_class(class_name)(name, fn, arguments)

    return Reviver


register_operation_reviver(revived_operation_class)
