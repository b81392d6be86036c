"""Tracing: symbolic tensors, primitives and the records they leave behind.

A **primitive** (``Primitive`` subclass, one instance per kind) declares the rules for one
operation side by side: ``infer`` (output specs from input specs), ``forward`` (the NumPy
kernel), ``vjp`` (its reverse-mode derivative, for the trainer) and ``to_onnx`` (its lowering).

``apply(prim, inputs, **attrs)`` is the only place where the two execution modes meet: if
any input is symbolic (or, inside a layer call, a ``Variable``) it records a ``PrimNode`` and
returns new ``SymbolicTensor``s whose ``producer`` points back at the record; otherwise it runs
``forward`` on NumPy arrays. A model walks these back-pointers from its outputs to build its
graph, so nothing global is needed to trace.

Every record also keeps the **scope**: the tuple of layer calls (outermost first) that were
running when it was made, so the graph knows which layer each primitive belongs to.
"""

from __future__ import annotations

import threading

import numpy as np

from irtool.ir.dtypes import standardize_dtype
from irtool.ir.naming import uniquify
from irtool.ir.spec import TensorSpec, format_shape
from irtool.ops.variable import Variable


class _ScopeStack(threading.local):
    def __init__(self):
        self.scope: tuple = ()


_state = _ScopeStack()


def current_scope() -> tuple:
    """The layer calls running now, outermost first (empty at the top level)."""
    return _state.scope


class scope:
    """Context manager that runs tracing inside ``call`` (a layer call record)."""

    __slots__ = ("call", "saved")

    def __init__(self, call, base: tuple | None = None):
        self.call = call
        self.saved = base

    def __enter__(self):
        parent = _state.scope if self.saved is None else self.saved
        self.saved = _state.scope
        _state.scope = parent + (self.call,)
        return _state.scope

    def __exit__(self, *exc):
        _state.scope = self.saved


class Primitive:
    """One kind of primitive operation, with all of its rules in one class.

    Subclasses set ``name`` (snake case, used in node names) and implement ``infer``,
    ``forward``, ``vjp`` and ``to_onnx`` (``tests/ops/test_primitive_contract.py`` checks that
    every primitive overrides all four); ``training_kernel``/``training_vjp`` only where training
    differs.
    """

    name = "primitive"
    num_outputs = 1
    # Hints for layout passes: ``elementwise`` ops commute with transposes of their
    # (broadcast) operands; ``layout_sensitive`` ops take ``data_format`` and read the
    # inputs at ``layout_inputs`` in that layout.
    elementwise = False
    layout_sensitive = False
    layout_inputs = (0,)

    def infer(self, specs: list, **attrs) -> list:
        raise NotImplementedError

    def forward(self, *arrays, **attrs):
        raise NotImplementedError

    def kernel(self, attrs: dict):
        """A callable ``f(*arrays)`` for the executor's compiled schedule, returning the output
        (or a tuple of outputs when ``num_outputs > 1``), with ``attrs`` bound."""
        forward = self.forward
        if attrs:
            return lambda *a: forward(*a, **attrs)
        return forward

    def bound_operand(self, attrs: dict, index: int, array):
        """The array the executor binds for input ``index`` when it is a weight or constant
        (default: ``array`` itself). An override may return a view in the layout its kernel
        reads fastest; a view, so that ``Variable.assign`` (in place) still reaches it."""
        return array

    def to_onnx(self, ctx, ins: list, outs: list, **attrs) -> None:
        raise NotImplementedError(f"Primitive {self.name!r} has no ONNX lowering.")

    def vjp(self, cotangents: list, inputs: list, outputs: list, **attrs) -> list:
        """Gradients of the loss for each input, from those of the outputs (the contract is in
        ``ops.gradients``' docstring)."""
        raise NotImplementedError(f"Primitive {self.name!r} has no gradient rule (vjp) yet.")

    def training_kernel(self, attrs: dict, rng):
        """The kernel used when training (dropout noise, batch statistics); default: ``kernel``.

        A training kernel may return ``(outputs, aux)`` if it sets ``returns_aux``; ``aux`` is
        then passed to ``training_vjp``.
        """
        return self.kernel(attrs)

    def inference_attrs(self, attrs: dict) -> dict | None:
        """The attributes this op gets when its model is called with ``training=False`` (a nested
        model's replay): the same by default; ops that only act when training drop that behaviour,
        and ``None`` means the op is then the identity on its first input (dropout, noise)."""
        return attrs

    returns_aux = False
    # Whether the primitive takes string tensors (lookups, hashing, identity); every other
    # primitive refuses them in ``apply`` with an error naming it, instead of computing garbage.
    accepts_strings = False
    # ``False`` for primitives with no gradient at all (comparisons, logical ops, argmax): their
    # ``vjp`` returns ``None`` for every input. A differentiable primitive still returns ``None``
    # for its non-float inputs (indices, masks) and when its outputs are not floats (a cast to int).
    differentiable = True
    # A vjp that accepts ``needs`` (one bool per input) may skip gradients nobody reads.
    vjp_uses_needs = False

    def training_vjp(self, cotangents: list, inputs: list, outputs: list, aux, **attrs) -> list:
        return self.vjp(cotangents, inputs, outputs, **attrs)

    def __repr__(self) -> str:
        return f"<Primitive {self.name}>"


def as_operand(x):
    """``x`` as an op takes it: tensors, Variables and arrays as they are; Python numbers and lists
    as arrays, a Python float in float32 (Keras' weak typing: it does not widen a float32 tensor)."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return np.asarray(x, dtype="float32" if isinstance(x, float) else None)


class PrimNode:
    """The record of one primitive application on symbolic tensors."""

    __slots__ = ("prim", "attrs", "inputs", "outputs", "scope")

    def __init__(self, prim: Primitive, attrs: dict, inputs: list, scope_: tuple):
        self.prim = prim
        self.attrs = attrs
        self.inputs = inputs
        self.outputs: list = []
        self.scope = scope_

    def __repr__(self) -> str:
        return f"<PrimNode {self.prim.name}>"


class Constant:
    """A literal array used as an operand in a traced graph (``x + 2.0``, ``ops.zeros``)."""

    __slots__ = ("value", "__weakref__")

    def __init__(self, value: np.ndarray):
        self.value = value

    @property
    def shape(self) -> tuple:
        return self.value.shape

    @property
    def dtype(self) -> str:
        return standardize_dtype(self.value.dtype)

    def __repr__(self) -> str:
        return f"<Constant shape={self.value.shape} dtype={self.value.dtype.name}>"


class SymbolicTensor:
    """A placeholder for a value: static shape (``None`` = unknown), dtype and history.

    ``producer``/``index`` point at the primitive record that computes it (``None`` for a
    model input). ``_keras_history`` is ``(call, tensor_index)`` when the tensor is an output
    of a layer call (or an ``Input``), which is what the layer-level view follows.
    Operators (``+ - * / @ ** [] < > != ...``) record primitives, as in Keras.
    """

    __slots__ = ("shape", "dtype", "producer", "index", "_keras_history", "_keras_mask", "_name", "__weakref__")

    def __init__(self, shape, dtype, producer=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.producer = producer
        self.index = index
        self._keras_history = None
        self._keras_mask = None
        self._name = name

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = uniquify("keras_tensor")
        return self._name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def sparse(self) -> bool:
        return False

    @property
    def ragged(self) -> bool:
        return False

    @property
    def spec(self) -> TensorSpec:
        return TensorSpec(self.shape, self.dtype)

    def __repr__(self) -> str:
        return (
            f"<KerasTensor shape={format_shape(self.shape)}, dtype={self.dtype}, sparse=False, "
            f"ragged=False, name={self.name}>"
        )

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor cannot be used as a boolean.")

    def __iter__(self):
        raise NotImplementedError(
            "Iterating over a symbolic KerasTensor is not supported. Use `ops.unstack` or index it."
        )

    def __len__(self):
        if self.shape and self.shape[0] is not None:
            return self.shape[0]
        raise TypeError("len() of a symbolic tensor with an unknown first dimension.")

    def __array__(self, dtype=None, copy=None):
        raise ValueError(
            "A KerasTensor is symbolic: it's a placeholder for a shape and a dtype. It doesn't have "
            "any actual numerical value. You cannot convert it to a NumPy array."
        )

    def __int__(self):
        self.__array__()

    __float__ = __int__
    __hash__ = object.__hash__

    # Operators are bound in irtool.ops.__init__ (they need the public op functions).


def is_symbolic(x) -> bool:
    return isinstance(x, SymbolicTensor)


def spec_of(x) -> TensorSpec:
    if isinstance(x, SymbolicTensor):
        return TensorSpec(x.shape, x.dtype)
    return TensorSpec(tuple(x.shape), standardize_dtype(x.dtype))


def value_of(x) -> np.ndarray:
    """The NumPy value of an eager operand (array, Variable, Constant or Python scalar)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, Constant):
        return x.value
    value = getattr(x, "_value", None)
    if value is not None:
        return value
    return np.asarray(x)


def apply(prim: Primitive, inputs: list, **attrs):
    """Apply ``prim``: record it if any input is symbolic, else compute it in NumPy.

    Returns a list of outputs (symbolic tensors or arrays).
    """
    # Inside a trace, an op reading a weight is recorded even with constant operands, so the
    # graph reads the weight at run time instead of freezing its current value.
    tracing = bool(_state.scope)
    symbolic = False
    for x in inputs:
        if isinstance(x, SymbolicTensor) or (tracing and isinstance(x, Variable)):
            symbolic = True
            break
    if not symbolic:
        arrays = [value_of(x) for x in inputs]
        if not prim.accepts_strings and any(a.dtype.kind in "OUS" for a in arrays):
            _refuse_strings(prim, [spec_of(a) for a in arrays])
        out = prim.forward(*arrays, **attrs)
        return [out] if prim.num_outputs == 1 else list(out)
    # Arrays and NumPy scalars (np.float32(1) has a shape too) become graph constants.
    operands = [
        x if hasattr(x, "shape") and not isinstance(x, (np.ndarray, np.generic)) else Constant(np.asarray(x))
        for x in inputs
    ]
    specs = [spec_of(x) for x in operands]
    if not prim.accepts_strings and any(s.dtype == "string" for s in specs):
        _refuse_strings(prim, specs)
    out_specs = prim.infer(specs, **attrs)
    node = PrimNode(prim, attrs, operands, _state.scope)
    node.outputs = [SymbolicTensor(s.shape, s.dtype, node, i) for i, s in enumerate(out_specs)]
    return node.outputs


def _refuse_strings(prim: Primitive, specs: list):
    scope_ = "/".join(call.operation.name for call in _state.scope if hasattr(call, "operation"))
    where = f" in '{scope_}'" if scope_ else ""
    raise ValueError(
        f"`{prim.name}`{where} does not accept string tensors: strings go only through lookups and hashing "
        f"(StringLookup, TextVectorization, Hashing, HashedCrossing). Received operands: "
        f"{', '.join(str(s) for s in specs)}."
    )


def apply_in_scope(prim: Primitive, inputs: list, attrs: dict, scope_: tuple) -> list:
    """``apply`` with an explicit scope (used to replay a model's graph inside a call)."""
    saved = _state.scope
    _state.scope = scope_
    try:
        return apply(prim, inputs, **attrs)
    finally:
        _state.scope = saved


# The one primitive tracing itself needs: ``record_call`` gives every layer output its own tensor.
class Identity(Primitive):
    """``out = x``. Also gives each layer output its own tensor; the lowering drops it."""

    elementwise = True
    accepts_strings = True

    name = "identity"

    def infer(self, specs):
        return [specs[0]]

    def forward(self, x):
        return x

    def vjp(self, cotangents, inputs, outputs):
        return [cotangents[0]]

    def to_onnx(self, ctx, ins, outs):
        ctx.node("Identity", ins, outs)


IDENTITY = Identity()


def identity(x):
    return apply(IDENTITY, [x])[0]
