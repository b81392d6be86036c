"""Channels-first conversion with transpose sinking: a graph -> graph pass run before lowering.

Keras models are channels_last (NHWC); ONNX's spatial operators (Conv, MaxPool, Resize...)
are channels_first (NCHW). Converting each such op on its own gives a Transpose pair around
every layer. This pass instead rewrites the graph so that:

- every ``layout_sensitive`` primitive with ``data_format="channels_last"`` runs as
  ``channels_first`` on a transposed input;
- a transposed value is not transposed back eagerly: it travels as ``(value, perm)`` (the
  original value equals ``transpose(value, perm)``) through ops that commute with a
  transpose — elementwise ops (constants and other operands are permuted to match, folded
  at export when they are weights), reductions and softmax (axes remapped), concatenation
  (axis remapped), ops that define ``sink_transpose(attrs, perm)`` (pad, tile, repeat,
  slicing: attrs remapped) and explicit transposes (perms composed, often cancelling);
- a real ``transpose`` primitive is emitted only where an op needs the original layout
  (a Flatten/Reshape, a Dense on the channel axis, a graph output), once per value.

So a conv stack carries one transpose at its input and one at its output. The pass preserves
the graph's semantics exactly (the NumPy executor gives the same results on the rewritten
graph, which the tests check) and its inputs and outputs (same keys, shapes and dtypes).
"""

from __future__ import annotations

from irtool.ir.graph import Graph
from irtool.ops.nn import Softmax
from irtool.ops.reduce import Reduce
from irtool.ops.shape import CONCATENATE, RESHAPE, TRANSPOSE, Concatenate, Transpose


def _compose(p: tuple, q: tuple) -> tuple:
    """``transpose(transpose(a, p), q) == transpose(a, _compose(p, q))``."""
    return tuple(p[i] for i in q)


def _inverse(p: tuple) -> tuple:
    out = [0] * len(p)
    for i, j in enumerate(p):
        out[j] = i
    return tuple(out)


def _is_identity(p) -> bool:
    return p is None or tuple(p) == tuple(range(len(p)))


def to_first_perm(rank: int) -> tuple:
    return (0, rank - 1, *range(1, rank - 1))


def to_last_perm(rank: int) -> tuple:
    return (0, *range(2, rank), 1)


def has_channels_last_ops(graph: Graph) -> bool:
    for key in graph.ops:
        op = graph.op(key)
        if (
            op.prim.layout_sensitive
            and op.attrs.get("data_format", "channels_last") == "channels_last"
            and graph.spec(op.inputs[op.prim.layout_inputs[0]]).ndim >= 3
        ):
            return True
    return False


def channels_first(graph: Graph) -> Graph:
    """Return an equivalent graph whose spatial ops are channels_first, with transposes sunk."""
    return _LayoutRewriter(graph).run()


class _LayoutRewriter:
    def __init__(self, graph: Graph):
        self.old = graph
        self.new = Graph()
        self.mapping: dict = {}  # old value -> (new value, perm or None)
        self.materialized: dict = {}  # (id(new value), perm) -> new value in original layout

    # -- values ---------------------------------------------------------------------------------
    def _adopt(self, value):
        """Add an old input/weight/const value to the new graph unchanged."""
        if value not in self.new:
            v = self.old.value(value)
            self.new.add_value(v.name, v.spec, v.kind, v.payload, key=value)
        self.mapping.setdefault(value, (value, None))
        return value

    def _shape(self, old_value) -> tuple:
        return self.old.spec(old_value).shape

    def _rank(self, old_value) -> int:
        return len(self.old.spec(old_value).shape)

    def _lookup(self, value):
        if value not in self.mapping:
            self._adopt(value)
        return self.mapping[value]

    def _emit(self, prim, attrs: dict, inputs: list, name: str, scope, out_names=None):
        """Add an op to the new graph; its outputs keep ``out_names`` (the old values' names)."""
        return self.new.add_op(prim, attrs, inputs, name, scope, output_names=out_names)

    def _transpose(self, value, perm: tuple, base: str, scope):
        return self._emit(TRANSPOSE, {"perm": tuple(perm)}, [value], f"{base}/transpose", scope)[0]

    def _original(self, old_value, base: str, scope):
        """The new value holding ``old_value`` in its original layout (emitting a transpose once)."""
        new, perm = self._lookup(old_value)
        if _is_identity(perm):
            return new
        key = (id(new), perm)
        if key not in self.materialized:
            self.materialized[key] = self._transpose(new, perm, base, scope)
        return self.materialized[key]

    # -- the pass -----------------------------------------------------------------------------------
    def run(self) -> Graph:
        for v in self.old.inputs:
            self._adopt(v)
        self.new.inputs = list(self.old.inputs)
        for key in self.old.ops:
            op = self.old.op(key)  # has the fields the rewrite reads: prim, attrs, inputs, outputs
            self._rewrite(op, op.name, op.scope)
        outputs = []
        for v in self.old.outputs:
            new = self._original(v, "output", ())
            outputs.append(new)
        self.new.outputs = outputs
        return self.new

    def _rewrite(self, op, name: str, scope) -> None:
        prim, attrs = op.prim, op.attrs
        base = name.rsplit("/", 1)[0] if "/" in name else name
        rank = self._rank(op.inputs[prim.layout_inputs[0]]) if prim.layout_sensitive else 0
        if prim.layout_sensitive and attrs.get("data_format", "channels_last") == "channels_last" and rank >= 3:
            self._rewrite_spatial(op, name, base, scope, rank)
        elif isinstance(prim, Transpose):
            new, perm = self._lookup(op.inputs[0])
            combined = _compose(perm or tuple(range(len(attrs["perm"]))), attrs["perm"])
            self.mapping[op.outputs[0]] = (new, None if _is_identity(combined) else combined)
        elif prim.elementwise:
            self._rewrite_elementwise(op, name, base, scope)
        elif self._sinkable(op):
            new, perm = self._lookup(op.inputs[0])
            sunk = prim.sink_transpose(attrs, perm)
            if sunk is None:
                self._copy(op, name, scope, [self._original(x, base, scope) for x in op.inputs])
                return
            new_attrs, out_perm = sunk
            ins = [new] + [self._original(x, base, scope) for x in op.inputs[1:]]
            self._copy(op, name, scope, ins, attrs=new_attrs, perm=None if _is_identity(out_perm) else out_perm)
        elif isinstance(prim, (Reduce, Softmax, Concatenate)) and self._permuted_input(op) is not None:
            self._rewrite_axes(op, name, base, scope)
        else:
            ins = [self._original(x, base, scope) for x in op.inputs]
            self._copy(op, name, scope, ins)

    def _sinkable(self, op) -> bool:
        """Ops that say how to commute with a transpose of their first input (pad, tile, slices...)."""
        if not hasattr(op.prim, "sink_transpose") or self._lookup(op.inputs[0])[1] is None:
            return False
        return all(self._lookup(x)[1] is None for x in op.inputs[1:])

    def _copy(self, op, name, scope, ins, attrs=None, perm=None):
        outs = self._emit(op.prim, op.attrs if attrs is None else attrs, ins, name, scope, self._names_of(op))
        for old, new in zip(op.outputs, outs):
            self.mapping[old] = (new, perm)
        return outs

    def _names_of(self, op) -> list:
        return [self.old.name(v) for v in op.outputs]

    def _permuted_input(self, op):
        perms = {self._lookup(x)[1] for x in op.inputs}
        if len(perms) == 1:
            (perm,) = perms
            return perm
        return None

    def _rewrite_spatial(self, op, name, base, scope, rank) -> None:
        ins = []
        for i, x in enumerate(op.inputs):
            if i in op.prim.layout_inputs:
                new, perm = self._lookup(x)
                want = _compose(perm or tuple(range(rank)), to_first_perm(rank))
                ins.append(new if _is_identity(want) else self._transpose(new, want, base, scope))
            else:
                ins.append(self._original(x, base, scope))
        attrs = dict(op.attrs, data_format="channels_first")
        self._copy(op, name, scope, ins, attrs=attrs, perm=to_last_perm(rank))

    def _rewrite_elementwise(self, op, name, base, scope) -> None:
        rank = max(self._rank(x) for x in op.inputs)
        perm = next((self._lookup(x)[1] for x in op.inputs if self._lookup(x)[1] is not None), None)
        if perm is None or not self._can_sink(op, perm, rank):
            self._copy(op, name, scope, [self._original(x, base, scope) for x in op.inputs])
            return
        inverse = _inverse(perm)
        ins = []
        for x in op.inputs:
            new, p = self._lookup(x)
            if p == perm:
                ins.append(new)
                continue
            value = self._original(x, base, scope)
            if any(d != 1 for d in self._shape(x)):
                # Align the operand with the permuted one: pad to full rank, then transpose.
                shape = self._shape(x)
                if len(shape) < rank:
                    target = (1,) * (rank - len(shape)) + tuple(-1 if d is None else d for d in shape)
                    value = self._emit(RESHAPE, {"shape": target}, [value], f"{base}/reshape", scope)[0]
                value = self._transpose(value, inverse, base, scope)
            ins.append(value)
        self._copy(op, name, scope, ins, perm=perm)

    def _can_sink(self, op, perm: tuple, rank: int) -> bool:
        """Whether every operand can follow ``perm``: same perm, or a broadcast operand we can
        pad and transpose (at most one unknown dim, which a reshape can carry as -1)."""
        if len(perm) != rank:
            return False
        for x in op.inputs:
            p = self._lookup(x)[1]
            if p is not None and p != perm:
                return False
            if p is None and sum(d is None for d in self._shape(x)) > 1:
                return False
        return True

    def _rewrite_axes(self, op, name, base, scope) -> None:
        new_inputs = [self._lookup(x)[0] for x in op.inputs]
        perm = self._lookup(op.inputs[0])[1]
        attrs = dict(op.attrs)
        if isinstance(op.prim, Reduce):
            axes = tuple(sorted(perm[a] for a in attrs["axes"]))
            attrs["axes"] = axes
            if attrs["keepdims"]:
                out_perm = perm
            else:
                kept_old = [i for i in range(len(perm)) if i not in op.attrs["axes"]]
                kept_new = sorted(perm[i] for i in kept_old)
                out_perm = tuple(kept_new.index(perm[i]) for i in kept_old)
        else:
            attrs["axis"] = perm[attrs["axis"]]
            out_perm = perm
        if op.prim is CONCATENATE and any(self._rank(x) != len(perm) for x in op.inputs):
            self._copy(op, name, scope, [self._original(x, base, scope) for x in op.inputs])
            return
        self._copy(op, name, scope, new_inputs, attrs=attrs, perm=None if _is_identity(out_perm) else out_perm)
