"""The Layer base class: weights, build, call, config, and calls on tensors or arrays.

A layer is an ``Operation`` that owns weights (``Variable``s) and describes its computation
in ``call()`` using ``irtool.ops``. Calling a layer on symbolic tensors runs ``call`` once
to *trace* it: the primitives it records become part of the graph, scoped to this call.
Calling it on NumPy arrays just runs ``call`` eagerly and returns arrays. So a custom layer
written with ops is executable, exportable and (with the trainer) trainable for free.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
import warnings
import weakref

import numpy as np

from irtool import constraints, initializers, regularizers
from irtool.ir import tree
from irtool.ir.dtypes import is_float, standardize_dtype
from irtool.layers.input_spec import assert_input_compatibility
from irtool.memory import array_bytes, check_allocation
from irtool.ops import core
from irtool.ops.core import SymbolicTensor
from irtool.ops.elementwise import cast
from irtool.ops.operation import Operation, record_call
from irtool.ops.variable import Variable


class _PathStack(threading.local):
    def __init__(self):
        self.names: list = []


_paths = _PathStack()
# The layers holding losses from an eager call (add_loss on arrays): an eager call clears its
# layers' only when some exist, so calls of models that add none walk no layers.
_EAGER_LOSS_HOLDERS: weakref.WeakSet = weakref.WeakSet()


@contextlib.contextmanager
def weight_path_scope(name: str):
    """Weights created inside get paths under ``name``, as under Keras' name scope of a layer
    being built (a Sequential model's layers: ``seq/dense/kernel``). Inside the layer's own call
    the scope is open already and is not doubled."""
    if _paths.names and _paths.names[-1] == name:
        yield
        return
    _paths.names.append(name)
    try:
        yield
    finally:
        _paths.names.pop()


_BASIC = (str, int, float, bool, type(None))


def dtype_policy_config(dtype: str) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


_MIXED_POLICIES: contextvars.ContextVar = contextvars.ContextVar("irtool_mixed_policies", default=None)


@contextlib.contextmanager
def one_mixed_precision_warning(source: str):
    """Within the block, layers with mixed-precision policies load as float32 silently; on leaving
    it, one warning names ``source``, the policies and the layers (instead of one per layer)."""
    sink: dict = {}
    token = _MIXED_POLICIES.set(sink)
    try:
        yield
    finally:
        _MIXED_POLICIES.reset(token)
    if sink:
        described = "; ".join(
            f"'{policy}' ({len(names)} layer{'s' if len(names) > 1 else ''}: {', '.join(names[:5])}"
            f"{', ...' if len(names) > 5 else ''})"
            for policy, names in sink.items()
        )
        warnings.warn(
            f"{source} uses Keras' mixed-precision dtype policies {described}. irtool has no mixed precision "
            "(and NumPy no bfloat16): these layers load with float32 variables and compute in float32, in NumPy and "
            "in the exported ONNX graph, so predictions match Keras only to float16/bfloat16 precision.",
            stacklevel=3,
        )


def dtype_from_config(config: dict) -> dict:
    """``config`` with its ``dtype`` (a Keras ``DTypePolicy`` dict or a policy name) as a dtype name.

    irtool layers have one dtype. Keras' mixed-precision policies (``mixed_float16``) keep float32
    weights; such a layer loads as float32 (computing in float32) with a warning.
    """
    dtype = config.get("dtype")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        sink = _MIXED_POLICIES.get()
        if sink is not None:
            sink.setdefault(dtype, []).append(str(config.get("name")))
            return {**config, "dtype": "float32"}
        warnings.warn(
            f"Layer '{config.get('name')}' uses Keras' mixed-precision dtype policy '{dtype}'; irtool has no mixed "
            "precision, so it loads as float32 and computes in float32.",
            stacklevel=3,
        )
        dtype = "float32"
    if "dtype" in config:
        config = {**config, "dtype": dtype}
    return config


_SIGNATURES: dict = {}


def _signature(fn) -> inspect.Signature:
    """``inspect.signature(fn)``, cached per underlying function (a bound method's signature
    depends only on its ``__func__``), since every layer construction and first call asks."""
    func = getattr(fn, "__func__", None)
    key = (func, True) if func is not None else (fn, False)
    try:
        sig = _SIGNATURES.get(key)
    except TypeError:  # an unhashable callable object
        return inspect.signature(fn)
    if sig is None:
        sig = _SIGNATURES[key] = inspect.signature(fn)
    return sig


class Layer(Operation):
    """Base class of all layers. Subclass it and implement ``build`` and ``call``.

    Example (the Keras guide's ``CustomDense``)::

        class CustomDense(layers.Layer):
            def __init__(self, units=32):
                super().__init__()
                self.units = units

            def build(self, input_shape):
                self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                         initializer="random_normal", trainable=True)
                self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

            def call(self, inputs):
                return ops.matmul(inputs, self.w) + self.b
    """

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # Keras builds a config from __init__ arguments when a class doesn't define one.
        try:
            signature = _signature(cls.__init__)
            bound = signature.bind(None, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(arguments)))
            var_keyword = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), "kwargs")
            extra = arguments.pop(var_keyword, {})
            arguments.update(extra)
            arguments = {k: v for k, v in arguments.items() if k not in ("args", "name")}
            if all(isinstance(v, _BASIC) for v in tree.flatten(arguments)):
                object.__setattr__(obj, "_auto_config", arguments)
            else:
                object.__setattr__(obj, "_auto_config", None)
        except TypeError:
            object.__setattr__(obj, "_auto_config", None)
        return obj

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_records_build_shapes", False):
            cls.build = _recording_build_shapes(build)

    def __init__(self, *, activity_regularizer=None, trainable=True, dtype=None, autocast=True, name=None, **kwargs):
        object.__setattr__(self, "_tracked_layers", [])
        object.__setattr__(self, "_build_shapes_dict", self.__dict__.get("_build_shapes_dict"))
        self._trainable_variables: list[Variable] = []
        self._non_trainable_variables: list[Variable] = []
        input_shape = kwargs.pop("input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        batch_size = kwargs.pop("batch_size", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if not isinstance(trainable, bool):
            raise ValueError(f"Expected `trainable` to be a boolean. Received: trainable={trainable}")
        super().__init__(name=name)
        if isinstance(dtype, dict):
            dtype = dtype.get("config", {}).get("name")
        self.dtype = standardize_dtype(dtype)
        self.autocast = autocast
        self._trainable = trainable
        self.built = False
        self.input_spec = None
        self.activity_regularizer = regularizers.get(activity_regularizer)
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        elif input_dim is not None:
            self._batch_input_shape = (batch_size, input_dim)
        else:
            self._batch_input_shape = None
        parameters = _signature(self.call).parameters
        self._call_has_training = "training" in parameters
        self._call_has_mask = "mask" in parameters
        self.supports_masking = getattr(self, "supports_masking", False)

    # -- attribute tracking -------------------------------------------------------------
    def __setattr__(self, name, value):
        tracked = self.__dict__.get("_tracked_layers")
        if tracked is not None and name != "_tracked_layers":
            seen = None
            if isinstance(value, dict):
                items = value.values()
            else:
                items = value if isinstance(value, (list, tuple)) else (value,)
            for item in items:
                if isinstance(item, Layer) and item is not self:
                    if seen is None:
                        seen = {id(t) for t in tracked}
                    if id(item) not in seen:
                        seen.add(id(item))
                        tracked.append(item)
                elif isinstance(item, Variable) and not self._holds(item):
                    # `self.scale = keras.Variable(1.0)`: this layer's weight, as in Keras (a sublayer's
                    # weight kept as an attribute, as SpectralNormalization keeps its layer's kernel, is not)
                    (self._trainable_variables if item.trainable else self._non_trainable_variables).append(item)
        object.__setattr__(self, name, value)

    def _holds(self, variable) -> bool:
        """Whether ``variable`` is already this layer's or one of its sublayers'."""
        own = self.__dict__.get("_trainable_variables", []) + self.__dict__.get("_non_trainable_variables", [])
        return any(v is variable for v in own) or any(
            v is variable for layer in self._tracked_layers for v in layer.weights
        )

    @property
    def path(self) -> str:
        return self.name

    # -- weights --------------------------------------------------------------------------
    def add_weight(
        self,
        shape=None,
        initializer=None,
        dtype=None,
        trainable=True,
        autocast=True,
        regularizer=None,
        constraint=None,
        aggregation="none",
        overwrite_with_gradient=False,
        name=None,
    ) -> Variable:
        """Create a Variable owned by this layer (Keras' argument names and defaults)."""
        shape = () if shape is None else tuple(shape)
        dtype = standardize_dtype(dtype or self.dtype)
        if initializer is None:
            initializer = "glorot_uniform" if is_float(dtype) else "zeros"
        if any(int(d) < 0 for d in shape):
            raise ValueError(
                f"Layer '{self.name}': weight {name!r} cannot have a negative dimension. Received: shape={shape}"
            )
        # Before the initializer draws it: an oversized weight is a message, not an out-of-memory kill.
        check_allocation(
            array_bytes(shape, np.dtype(dtype).itemsize),
            f"Layer '{self.name}': weight {name!r} of shape {shape} {dtype}",
        )
        value = initializers.get(initializer)(shape, dtype=dtype)
        variable = Variable(value, dtype=dtype, trainable=trainable, name=name)
        variable.regularizer = regularizers.get(regularizer)
        variable.constraint = constraints.get(constraint)
        # Under the layers being built or called (a sublayer built in its parent's build or call).
        stack = _paths.names
        if stack and stack[-1] == self.name:
            prefix = "/".join(stack)
        elif stack:
            prefix = "/".join(stack) + "/" + self.name
        else:
            prefix = self.path
        variable.path = f"{prefix}/{variable.name}"
        (self._trainable_variables if trainable else self._non_trainable_variables).append(variable)
        return variable

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._tracked_layers:
            layer.trainable = value

    @property
    def weights(self) -> list[Variable]:
        out, seen = [], set()
        for w in (
            self._trainable_variables
            + self._non_trainable_variables
            + [w for layer in self._sublayers() for w in layer.weights]
        ):
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        return out

    def _sublayers(self) -> list:
        return self._tracked_layers

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        own = [w for w in self._trainable_variables if w.trainable]
        return _dedup(own + [w for layer in self._sublayers() for w in layer.trainable_weights])

    @property
    def non_trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return self.weights
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights) -> None:
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(
                f"You called `set_weights(weights)` on layer '{self.name}' with a weight list of length "
                f"{len(weights)}, but the layer was expecting {len(mine)} weights."
            )
        for variable, value in zip(mine, weights):
            value = np.asarray(value)
            if value.shape != variable.shape:
                raise ValueError(
                    f"Layer {self.name} weight shape {variable.shape} is not compatible with provided weight "
                    f"shape {value.shape}."
                )
        for variable, value in zip(mine, weights):
            variable.assign(value)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                "You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    @property
    def losses(self) -> list:
        """The current weight-regularization penalties (one scalar per regularized trainable
        weight of this layer and its sublayers), as Keras computes them for ``layer.losses``, then
        the values ``add_loss`` was given during the last eager call of this layer and its sublayers."""
        penalties = [np.asarray(w.regularizer(w)) for w in self.trainable_weights if w.regularizer is not None]
        return penalties + [
            loss for layer in self._with_sublayers() for loss in layer.__dict__.get("_eager_losses", [])
        ]

    def add_loss(self, loss) -> None:
        """Add ``loss`` (a tensor; a non-scalar one is summed) to the training loss, as Keras' ``add_loss``:
        called in ``call``, on the call's symbolic tensors it becomes part of the loss every ``fit``
        and ``evaluate`` of a model containing the call computes; on arrays (an eager call) it is
        kept in ``layer.losses`` until the next call."""
        if any(isinstance(t, SymbolicTensor) for t in tree.flatten(loss)):
            call = next((c for c in reversed(core.current_scope()) if getattr(c, "operation", None) is self), None)
            if call is None:
                raise ValueError(
                    f"Layer '{self.name}': `add_loss` on symbolic tensors belongs inside the layer's `call()`; "
                    "outside it, pass the loss to `compile()` instead."
                )
            call.added_losses.append(loss)
            return
        self.__dict__.setdefault("_eager_losses", []).append(np.asarray(loss))
        _EAGER_LOSS_HOLDERS.add(self)

    def _with_sublayers(self) -> list:
        out, stack, seen = [], [self], set()
        while stack:
            layer = stack.pop()
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
                stack.extend(layer._sublayers())
        return out

    # -- building and calling ---------------------------------------------------------------
    def build(self, input_shape) -> None:
        self.built = True

    def get_build_config(self):
        """The shapes the layer was built with: ``{"input_shape": ...}``, or ``{"shapes_dict":
        {...}}`` for a ``build`` with several shape arguments (Keras' format); ``None`` unbuilt."""
        shapes = self.__dict__.get("_build_shapes_dict")
        if shapes is None:
            return None
        if len(shapes) == 1:
            return {"input_shape": next(iter(shapes.values()))}
        return {"shapes_dict": dict(shapes)}

    def build_from_config(self, config) -> None:
        """Create the weights from :meth:`get_build_config`'s output (called when loading)."""
        if not config:
            return
        if "input_shape" in config:
            self.build(_as_shape(config["input_shape"]))
        elif "shapes_dict" in config:
            self.build(**{k: _as_shape(v) for k, v in config["shapes_dict"].items()})
        self.built = True

    def call(self, *args, **kwargs):
        raise NotImplementedError(f"Layer {type(self).__name__} does not have a `call()` method implemented.")

    def _build_from(self, args, kwargs) -> None:
        """Build from the call's tensor arguments, as Keras does: ``build(input_shape)`` for one
        tensor argument, ``build(query_shape=..., value_shape=...)`` when ``build`` names them."""
        shapes = {}
        try:
            bound = _signature(self.call).bind(*args, **kwargs).arguments
        except TypeError:
            bound = {"inputs": args[0] if args else next(iter(kwargs.values()), None)}
        for name, value in bound.items():
            if name in ("mask", "training") or not any(hasattr(t, "shape") for t in tree.flatten(value)):
                continue
            shapes[f"{name}_shape"] = tree.map_structure(
                lambda t: tuple(t.shape) if hasattr(t, "shape") else None, value
            )
        build_params = [n for n in _signature(self.build).parameters if n not in ("self", "args", "kwargs")]
        named = {k: v for k, v in shapes.items() if k in build_params}
        if len(shapes) > 1 and named and len(build_params) > 1:
            self.build(**named)
        else:
            first = next(iter(shapes.values()), None)
            if isinstance(first, list) and len(first) == 1 and not isinstance(args[0] if args else None, list):
                first = first[0]
            self.build(first)
        self.built = True

    def __call__(self, *args, **kwargs):
        if "training" in kwargs and not self._call_has_training:
            # As Keras: a layer whose ``call`` takes no ``training`` ignores it (Keras' files
            # record ``training=True`` for preprocessing layers such as CenterCrop).
            kwargs.pop("training")
        flat = tree.flatten([args, kwargs])
        # Weights created while this layer builds or runs (sublayers built lazily inside
        # ``call``) get paths under this layer's, like ``custom_rnn/dense_1/kernel``.
        _paths.names.append(self.name)
        try:
            first = args[0] if args else next(iter(kwargs.values()), None)
            error = _input_error(self, [t for t in tree.flatten(first) if hasattr(t, "shape")])
            if error is not None:
                raise error
            if not self.built:
                self._build_from(args, kwargs)
            if not any(isinstance(x, SymbolicTensor) for x in flat):
                if self.autocast:
                    args, kwargs = self._autocast(args, kwargs)
                if len(_paths.names) == 1 and _EAGER_LOSS_HOLDERS:  # the outermost eager call starts afresh
                    for layer in self._with_sublayers():  # (no walk when no layer holds eager losses)
                        if layer.__dict__.pop("_eager_losses", None) is not None:
                            _EAGER_LOSS_HOLDERS.discard(layer)
                outputs = self.call(*args, **kwargs)
                if self.activity_regularizer is not None:  # Keras' penalty per output, over the batch size
                    for out in tree.flatten(outputs):
                        if is_float(str(getattr(out, "dtype", ""))):
                            penalty = np.asarray(self.activity_regularizer(out))
                            self.add_loss(penalty / out.shape[0] if np.ndim(out) else penalty)
                return outputs
            return self._symbolic_call(first, args, kwargs)
        except (ValueError, TypeError, IndexError) as error:
            if getattr(error, "_irtool_context", False) or not any(isinstance(x, SymbolicTensor) for x in flat):
                raise
            raise _with_call_context(error, self, args, kwargs) from None
        finally:
            _paths.names.pop()

    # -- masking ----------------------------------------------------------------------------
    def compute_mask(self, inputs, previous_mask):
        """The mask of this layer's output (default: pass the input's mask through if supported)."""
        if not self.supports_masking:
            return None
        return previous_mask

    def _symbolic_call(self, first, args, kwargs):
        previous_mask = tree.map_structure(lambda t: getattr(t, "_keras_mask", None), first)
        has_mask = any(m is not None for m in tree.flatten(previous_mask))
        if has_mask and self._call_has_mask and "mask" not in kwargs:
            kwargs = dict(kwargs, mask=previous_mask)
        call = self._autocast_call if self.autocast and is_float(self.dtype) else self.call
        if self.supports_masking:
            return record_call(
                self, call, args, kwargs, compute_masks=lambda _: self.compute_mask(first, previous_mask)
            )
        if has_mask:
            warnings.warn(
                f"Layer '{self.name}' (of type {type(self).__name__}) was passed an input with a mask attached to "
                "it. However, this layer does not support masking and will therefore destroy the mask "
                "information. Downstream layers will not see the mask.",
                stacklevel=3,
            )
        return record_call(self, call, args, kwargs)

    def _autocast_call(self, *args, **kwargs):
        # Runs inside the call's scope, so the casts belong to this layer in the graph.
        args, kwargs = self._autocast(args, kwargs)
        return self.call(*args, **kwargs)

    def _autocast(self, args, kwargs):
        """Cast floating-point tensor arguments to the layer's dtype (masks travel along)."""
        if not is_float(self.dtype):
            return args, kwargs

        def convert(x):
            if isinstance(x, SymbolicTensor):
                if not is_float(x.dtype) or x.dtype == self.dtype:
                    return x
                out = cast(x, self.dtype)
                out._keras_mask = x._keras_mask
                return out
            if isinstance(x, np.ndarray) and is_float(x.dtype.name) and x.dtype.name != self.dtype:
                return x.astype(self.dtype)
            return x

        args = tuple(tree.map_structure(convert, a) for a in args)
        kwargs = {k: v if k == "mask" else tree.map_structure(convert, v) for k, v in kwargs.items()}
        return args, kwargs

    # -- call history ----------------------------------------------------------------------
    def _first_call(self, what: str):
        if not self._inbound_nodes:
            raise AttributeError(f"The layer {self.name} has never been called and thus has no defined {what}.")
        return self._inbound_nodes[0]

    @property
    def input(self):
        tensors = self._first_call("input").input_tensors
        return tensors[0] if len(tensors) == 1 else tensors

    @property
    def output(self):
        tensors = self._first_call("output").output_tensors
        return tensors[0] if len(tensors) == 1 else tensors

    # -- config ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (``from_config``), Keras' keys.

        A subclass that does not define ``get_config`` gets its ``__init__`` arguments when they
        are all plain values (numbers, strings, ``None``, and lists/dicts of them), as in Keras.
        """
        config = {"name": self.name}
        own = type(self).get_config is not Layer.get_config
        if not own and type(self).__init__ is not Layer.__init__:
            auto = self.__dict__.get("_auto_config")
            if auto is None:
                raise NotImplementedError(
                    f"Layer {type(self).__name__} was created by passing non-serializable argument values in "
                    "`__init__()`, and therefore the layer must override `get_config()` in order to be "
                    "serializable."
                )
            config.update(auto)
            params = _signature(type(self).__init__).parameters
            if "name" not in params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                del config["name"]  # it could not be passed back to __init__
        config.update({"trainable": self.trainable, "dtype": dtype_policy_config(self.dtype)})
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        """A new layer from :meth:`get_config`'s output (serialized sub-objects included)."""
        config = dtype_from_config(dict(config))
        try:
            return cls(**config)
        except TypeError as error:
            # The guide's pattern: an __init__ that takes only its own arguments (no **kwargs).
            params = _signature(cls.__init__).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                raise TypeError(
                    f"Error when deserializing class '{cls.__name__}' using config={config}.\n\n"
                    f"Exception encountered: {error}"
                ) from error
            return cls(**{k: v for k, v in config.items() if k in params})

    def __repr__(self) -> str:
        return f"<{self.class_name} name={self.name}, built={self.built}>"


def _input_error(layer: Layer, tensors: list):
    try:
        assert_input_compatibility(layer.input_spec, tensors, layer.name)
    except ValueError as error:
        error._irtool_context = True
        return error
    return None


def _dedup(weights: list) -> list:
    seen, out = set(), []
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


def _describe(x) -> str:
    if isinstance(x, (SymbolicTensor, np.ndarray)):
        if isinstance(x, np.ndarray):
            return f"np.ndarray(shape={x.shape}, dtype={x.dtype})"
        return repr(x)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_describe(i) for i in x) + "]"
    return repr(x)


def _with_call_context(error: Exception, layer: Layer, args, kwargs) -> Exception:
    """Keras-style: say which layer failed and with what arguments, keep the original message."""
    cls = layer.class_name
    try:
        names = list(inspect.signature(layer.call).parameters)
    except (TypeError, ValueError):
        names = []
    received = [f"  • {names[i] if i < len(names) else f'arg{i}'}={_describe(a)}" for i, a in enumerate(args)]
    received += [f"  • {k}={_describe(v)}" for k, v in kwargs.items()]
    message = (
        f"Exception encountered when calling {cls}.call() of layer '{layer.name}'.\n\n{error}\n\n"
        f"Arguments received by {cls}.call():\n" + "\n".join(received)
    )
    new = type(error)(message)
    new._irtool_context = True
    return new


def _as_shape(shape):
    """A shape read from a config (JSON lists) as the tuple ``build`` expects; nested shapes stay nested."""
    if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape):
        return tuple(shape)
    if isinstance(shape, (list, tuple)):
        return [_as_shape(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _as_shape(v) for k, v in shape.items()}
    return shape


def _recording_build_shapes(build):
    """Wrap a subclass' ``build`` so the outermost call records its shape arguments, which
    ``get_build_config`` saves and ``build_from_config`` replays when the layer is loaded."""

    @functools.wraps(build)
    def recording_build(self, *args, **kwargs):
        if self.__dict__.get("_build_shapes_dict") is None and (args or kwargs):
            try:
                bound = _signature(build).bind(self, *args, **kwargs).arguments
            except TypeError:
                bound = {}
            bound.pop(next(iter(bound), None), None)
            shapes = {k: _shape_value(v) for k, v in bound.items() if v is not None and k not in ("args", "kwargs")}
            if shapes:
                object.__setattr__(self, "_build_shapes_dict", shapes)
        return build(self, *args, **kwargs)

    recording_build._records_build_shapes = True
    return recording_build


def _shape_value(shape):
    if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, (int, np.integer)) for d in shape):
        return tuple(None if d is None else int(d) for d in shape)
    if isinstance(shape, (list, tuple)):
        return [_shape_value(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _shape_value(v) for k, v in shape.items()}
    return shape
