"""Operations and their call records (Keras' ``Operation`` and ``Node``).

An ``Operation`` is anything that can be called on tensors and appear as a box in a
model: a ``Layer``, a ``Model``, or a raw op used at the top level (``x + y``,
``ops.matmul(x, w)`` outside any layer). Each call on symbolic tensors leaves a
``LayerCall`` record: which operation, the arguments, the input and output tensors and its
index among that operation's calls. A call is not the operation itself: one shared layer
has several calls, one per use. Tensors find their history through ``_keras_history``
(``(call, tensor_index)``), which is what ``Model`` walks to order its layers.
"""

from __future__ import annotations

from irtool.ir import naming, tree
from irtool.ops import core
from irtool.ops.core import SymbolicTensor


class Operation:
    """Base of layers, models and raw ops: a unique name and a list of call records."""

    def __init__(self, name: str | None = None):
        if name is None:
            name = naming.uniquify(naming.to_snake_case(self.class_name))
        self.name = naming.validate_name(name)
        self._inbound_nodes: list[LayerCall] = []

    @property
    def class_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.class_name} name={self.name}>"


class RawOperation(Operation):
    """A public op called on symbolic tensors outside any layer (shows as ``add (Add)``).

    Never instantiated itself: each op has a subclass named like Keras' op class (``Add``,
    ``GetItem``, ``Matmul``), so ``type(op).__name__`` reads as in Keras. Make them with
    :func:`raw_operation`; ``isinstance(op, RawOperation)`` tells any of them apart from layers.
    """


# Keras op class name -> its RawOperation subclass. The names come from ``top_level_op``'s
# argument on each public op (the one name table); a class is made the first time it is used.
_RAW_OPERATION_CLASSES: dict[str, type] = {}


def raw_operation_class(class_name: str) -> type:
    """The ``RawOperation`` subclass called ``class_name`` (one class per name)."""
    cls = _RAW_OPERATION_CLASSES.get(class_name)
    if cls is None:
        if not class_name.isidentifier():
            raise ValueError(f"An operation class name must be a Python identifier. Received: {class_name!r}")
        cls = type(class_name, (RawOperation,), {"__module__": __name__, "__qualname__": class_name})
        _RAW_OPERATION_CLASSES[class_name] = cls
    return cls


def raw_operation(class_name: str) -> RawOperation:
    """A new raw op of Keras' class ``class_name``, auto-named like Keras (``add``, ``add_1``)."""
    return raw_operation_class(class_name)()


class LayerCall:
    """The record of one call of an operation on symbolic tensors (Keras' ``Node``)."""

    __slots__ = (
        "operation",
        "index",
        "args",
        "kwargs",
        "input_tensors",
        "outputs",
        "output_tensors",
        "replayed",
        "added_losses",
    )

    def __init__(self, operation: Operation, args: tuple, kwargs: dict):
        self.operation = operation
        self.index = len(operation._inbound_nodes)
        self.args = args
        self.kwargs = kwargs
        self.input_tensors = [x for x in tree.flatten([args, kwargs]) if isinstance(x, SymbolicTensor)]
        self.outputs = None
        self.output_tensors: list = []
        # For a nested model's call: its own tensors (by id) -> the tensors its replay recorded.
        self.replayed: dict | None = None
        self.added_losses: list = []  # what the call gave Layer.add_loss (symbolic tensors)

    @property
    def is_input(self) -> bool:
        return not self.input_tensors

    @property
    def parent_nodes(self) -> list:
        return [t._keras_history[0] for t in self.input_tensors if t._keras_history is not None]

    def __repr__(self) -> str:
        return f"<LayerCall {self.operation.name}[{self.index}]>"


def record_call(
    operation: Operation, fn, args: tuple, kwargs: dict, scope_base: tuple | None = None, compute_masks=None
):
    """Run ``fn(*args, **kwargs)`` on symbolic tensors as a call of ``operation``.

    Primitives recorded inside get this call in their scope. Outputs become fresh tensors
    owned by the call (an output that is an input, another call's output or repeated gets an
    ``identity`` primitive so each tensor has exactly one history). ``compute_masks(outputs)``,
    if given, runs in the same scope and returns the output masks (Keras' ``_keras_mask``).
    """
    call = LayerCall(operation, args, kwargs)
    with core.scope(call, scope_base):
        outputs = fn(*args, **kwargs)
        flat = tree.flatten(outputs)
        fresh = []
        seen = set()
        input_ids = {id(x) for x in call.input_tensors}
        for i, t in enumerate(flat):
            if not isinstance(t, SymbolicTensor):
                raise TypeError(
                    f"`{operation.class_name}.call()` of '{operation.name}' must return tensors computed from "
                    f"its inputs. Received output {i} of type {type(t).__name__}."
                )
            if t._keras_history is not None or t.producer is None or id(t) in seen or id(t) in input_ids:
                t = core.identity(t)
            seen.add(id(t))
            fresh.append(t)
        outputs = tree.pack_like(outputs, fresh)
        if compute_masks is not None:
            masks = compute_masks(outputs)
            if masks is not None:
                # Paired one to one, as Keras does: a single mask goes to the first output only.
                flat_masks = tree.flatten(masks) if isinstance(masks, (list, tuple, dict)) else [masks]
                for t, m in zip(fresh, flat_masks):
                    t._keras_mask = m
    for i, t in enumerate(fresh):
        t._keras_history = (call, i)
        if t._name is None:
            t._name = naming.uniquify("keras_tensor")
    call.outputs = outputs
    call.output_tensors = fresh
    operation._inbound_nodes.append(call)
    return call.outputs


def top_level_op(class_name: str):
    """Decorate a public op: on symbolic tensors at the top level, record it as a raw op."""

    def decorate(fn):
        def wrapper(*args, **kwargs):
            if core.current_scope() or not any(isinstance(x, SymbolicTensor) for x in tree.flatten([args, kwargs])):
                return fn(*args, **kwargs)
            return record_call(raw_operation(class_name), fn, args, kwargs)

        wrapper.__name__ = fn.__name__
        wrapper.__qualname__ = fn.__qualname__
        wrapper.__doc__ = fn.__doc__
        wrapper.__wrapped__ = fn
        wrapper._keras_op_class = class_name  # how a model config names this op (Keras' op class)
        return wrapper

    return decorate
