"""The graph IR: a networkx multigraph of primitive operations and the values they use.

There are two kinds of nodes. **Op nodes** are applications of a primitive (``matmul``,
``add``...); **value nodes** are the tensors flowing between them: model inputs, weights,
constants and intermediates. Edges go value -> op (attribute ``port``: the op's input
index) and op -> value (``port``: the op's output index). Because the same value can feed
one op twice (``x * x``) the graph is a ``MultiDiGraph``.

The graph owns its data: once built, everything that runs, differentiates, lowers, prints or
draws a model reads it through the methods below (``op``, ``value``, ``op_inputs``,
``consumers``...), and passes change it only through the edit methods (``add_op``,
``replace_uses``, ``remove_op``...), which keep the networkx edges, the ordered operand lists
and the topological ``ops`` list in step. ``graph.nx`` stays readable as plain networkx: each
node's attribute dict holds ``is_op``, ``name`` and, for values, ``spec``, ``kind`` and
``payload`` (the ``Variable`` of a weight, the array of a constant), for ops ``prim``,
``attrs``, ``scope``, ``inputs`` and ``outputs``. Treat it as read-only.

The graph knows nothing of layers or ONNX: op nodes carry an opaque ``prim`` object with
``infer`` (shape/dtype inference) and an opaque ``scope`` (the layer calls they belong to).
Node keys are opaque too: a traced model uses its tracing objects, passes get fresh ``Key``s.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import networkx as nx

from irtool.ir.naming import UniqueNamer
from irtool.ir.spec import TensorSpec

VALUE_KINDS = ("input", "weight", "const", "intermediate")


class Key:
    """An opaque node key for nodes that a pass creates (a traced graph uses its tracing objects)."""

    __slots__ = ("label",)

    def __init__(self, label: str):
        self.label = label

    def __repr__(self) -> str:
        return f"<Key {self.label}>"


class Op(NamedTuple):
    """What the graph records for an op node (``graph.op(key)``)."""

    name: str
    prim: Any
    attrs: dict
    scope: tuple
    inputs: tuple
    outputs: tuple


class Value(NamedTuple):
    """What the graph records for a value node (``graph.value(key)``)."""

    name: str
    spec: TensorSpec
    kind: str
    payload: Any


class Graph:
    """A DAG of op and value nodes with ordered inputs, outputs and a topological op list.

    Example::

        print(model.graph)      # one op per line, with names, shapes and dtypes
        model.graph.lint()      # raises if an invariant is broken
        for op in model.graph.ops:
            print(model.graph.op(op).prim.name, model.graph.op_inputs(op))
    """

    def __init__(self):
        self.nx = nx.MultiDiGraph()
        self.inputs: list = []
        self.outputs: list = []
        self._ops: list = []
        self._removed: set = set()  # ops removed since `ops` was last compacted
        self._value_names = UniqueNamer()
        self._op_names = UniqueNamer()

    @property
    def ops(self) -> list:
        """The op nodes in topological order (the list itself: passes may reorder it, lint checks)."""
        if self._removed:  # removals are O(1): compact once, when the order is read
            self._ops[:] = [op for op in self._ops if op not in self._removed]
            self._removed.clear()
        return self._ops

    @ops.setter
    def ops(self, ops: list) -> None:
        self._ops, self._removed = list(ops), set()

    # -- reading ------------------------------------------------------------------------
    def op(self, op) -> Op:
        d = self.nx._node[op]
        return Op(d["name"], d["prim"], d["attrs"], d["scope"], tuple(d["inputs"]), tuple(d["outputs"]))

    def value(self, value) -> Value:
        d = self.nx._node[value]
        return Value(d["name"], d["spec"], d["kind"], d["payload"])

    def __contains__(self, node) -> bool:
        return node in self.nx

    def is_op(self, node) -> bool:
        return self.nx._node[node]["is_op"]

    def name(self, node) -> str:
        return self.nx._node[node]["name"]

    def spec(self, value) -> TensorSpec:
        return self.nx._node[value]["spec"]

    def kind(self, value) -> str:
        return self.nx._node[value]["kind"]

    def prim(self, op):
        return self.nx._node[op]["prim"]

    def attrs(self, op) -> dict:
        return self.nx._node[op]["attrs"]

    def scope(self, op) -> tuple:
        return self.nx._node[op]["scope"]

    def op_inputs(self, op) -> list:
        """The values ``op`` reads, by input port."""
        return list(self.nx._node[op]["inputs"])

    def op_outputs(self, op) -> list:
        """The values ``op`` computes, by output port."""
        return list(self.nx._node[op]["outputs"])

    def producer(self, value):
        """The op computing ``value``, or None for inputs, weights and constants."""
        for op in self.nx.predecessors(value):
            return op
        return None

    def consumers(self, value) -> list:
        """The ops reading ``value``, each once, in topological order."""
        readers = set(self.nx.successors(value))
        if len(readers) <= 1:
            return list(readers)
        position = {op: i for i, op in enumerate(self.ops)}
        return sorted(readers, key=position.__getitem__)

    def uses(self, value) -> int:
        """How many operand slots (and graph outputs) read ``value``."""
        return self.nx.out_degree(value) + sum(v is value for v in self.outputs)

    def values(self, kind: str | None = None) -> list:
        return [n for n, d in self.nx.nodes(data=True) if not d["is_op"] and (kind is None or d["kind"] == kind)]

    def constant_array(self, value):
        """The array a weight or constant holds now (a weight's current value), else None."""
        d = self.nx._node[value]
        if d["kind"] == "weight":
            return d["payload"]._value
        if d["kind"] == "const":
            return d["payload"]
        return None

    def ancestors(self, values) -> set:
        """All nodes (ops and values) that ``values`` depend on, the values included."""
        seen = set(values)
        for v in values:
            seen |= nx.ancestors(self.nx, v)
        return seen

    # -- building and editing -------------------------------------------------------------
    def add_value(self, name: str, spec: TensorSpec, kind: str, payload=None, key=None):
        """Add a value node named ``name`` (made unique); returns its key."""
        if kind not in VALUE_KINDS:
            raise ValueError(f"Unknown value kind {kind!r}: expected one of {VALUE_KINDS}.")
        key = Key(name) if key is None else key
        name = self._value_names(name)
        self.nx.add_node(key, is_op=False, name=name, spec=spec, kind=kind, payload=payload)
        return key

    def fresh_op_name(self, name: str) -> str:
        """The name ``add_op`` will give an op named ``name`` (unique among ops; nothing reserved)."""
        return self._op_names.peek(name)

    def add_op(
        self,
        prim,
        attrs: dict,
        inputs: list,
        name: str,
        scope: tuple = (),
        *,
        output_specs=None,
        output_keys=None,
        output_names=None,
        key=None,
        before=None,
    ) -> list:
        """Add an op reading ``inputs`` (values of this graph); returns its new output values.

        The outputs are named ``output_names``, by default after the op (``name``, or ``name:i``
        for several), with ``output_specs``, by default what ``prim.infer`` gives; a traced
        graph passes its tensors as ``output_keys`` (and ``key``) to key the nodes by them. The op goes at the
        end of ``ops`` (its inputs must be computed already), or just before the op ``before``.
        """
        name = self._op_names(name)
        if output_specs is None:
            output_specs = prim.infer([self.spec(v) for v in inputs], **attrs)
        if output_names is None:
            output_names = [name] if len(output_specs) == 1 else [f"{name}:{i}" for i in range(len(output_specs))]
        output_keys = output_keys or [None] * len(output_specs)
        outputs = [
            self.add_value(n, s, "intermediate", key=k) for n, s, k in zip(output_names, output_specs, output_keys)
        ]
        key = Key(name) if key is None else key
        self.nx.add_node(
            key, is_op=True, name=name, prim=prim, attrs=attrs, scope=scope, inputs=list(inputs), outputs=list(outputs)
        )
        for port, value in enumerate(inputs):
            self.nx.add_edge(value, key, port=port)
        for port, value in enumerate(outputs):
            self.nx.add_edge(key, value, port=port)
        if before is None:
            self._ops.append(key)
        else:
            self.ops.insert(self.ops.index(before), key)
        return list(outputs)

    def replace_op(self, op, prim, attrs: dict, inputs: list, name: str | None = None) -> None:
        """Compute ``op``'s output values with another primitive: the op keeps its key, its place
        in ``ops`` and its outputs (same keys and names, so consumers and graph outputs are
        untouched) and reads ``inputs``, which must be computed before it."""
        d = self.nx._node[op]
        specs = prim.infer([self.spec(v) for v in inputs], **attrs)
        if [tuple(s) for s in specs] != [tuple(self.spec(v)) for v in d["outputs"]]:
            raise ValueError(
                f"Cannot replace op {d['name']!r}: {prim.name} infers {specs}, the op computes "
                f"{[self.spec(v) for v in d['outputs']]}."
            )
        self.nx.remove_edges_from(list(self.nx.in_edges(op, keys=True)))
        for port, value in enumerate(inputs):
            self.nx.add_edge(value, op, port=port)
        if name is not None and name != d["name"]:
            self._op_names.used.discard(d["name"])
            d["name"] = self._op_names(name)
        d.update(prim=prim, attrs=attrs, inputs=list(inputs))

    def replace_uses(self, old, new) -> None:
        """Make every op input and graph output that reads ``old`` read ``new`` instead, except
        the op computing ``new`` (which may read ``old``: ``new = f(old)`` inserted after it)."""
        maker = self.producer(new)
        moved = [
            (op, key, port) for _, op, key, port in self.nx.out_edges(old, keys=True, data="port") if op is not maker
        ]
        for op, key, port in moved:
            self.nx._node[op]["inputs"][port] = new
            self.nx.add_edge(new, op, port=port)
            self.nx.remove_edge(old, op, key)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_op(self, op) -> None:
        """Remove ``op`` and its output values, which nothing may read any more."""
        outputs = self.nx._node[op]["outputs"]
        for v in outputs:
            if self.uses(v):
                raise ValueError(f"Cannot remove op {self.name(op)!r}: its output {self.name(v)!r} is still used.")
        self.nx.remove_nodes_from([op, *outputs])
        self._removed.add(op)

    def remove_unused(self) -> None:
        """Drop ops none of whose outputs reach a graph output, then weights and constants nobody reads."""
        live = set(self.outputs)
        kept = []
        for op in reversed(self.ops):
            d = self.nx._node[op]
            if any(v in live for v in d["outputs"]):
                live.update(d["inputs"])
                kept.append(op)
        kept_set = set(kept)
        for op in [op for op in self.ops if op not in kept_set]:
            self.nx.remove_nodes_from([op, *self.nx._node[op]["outputs"]])
        self.ops = kept[::-1]
        unread = [v for v in self.values() if self.kind(v) in ("weight", "const") and not self.nx.out_degree(v)]
        self.nx.remove_nodes_from(unread)

    def copy(self) -> Graph:
        """An independent graph with the same keys, names and records (payloads are shared)."""
        other = Graph()
        # networkx's own copy re-adds every node and edge through its API, twice as slow on a
        # 1,000-layer chain as copying its dicts: node records are copied (and ops' operand lists,
        # which edits change), edge attribute dicts ({"port": i}, never changed) are shared, and
        # _succ[u][v] stays the same key dict as _pred[v][u], as networkx keeps them.
        g, h = self.nx, other.nx
        h._node = {n: d.copy() for n, d in g._node.items()}
        for op in self.ops:
            d = h._node[op]
            d["inputs"], d["outputs"] = list(d["inputs"]), list(d["outputs"])
        succ = {u: {v: keys.copy() for v, keys in nbrs.items()} for u, nbrs in g._succ.items()}
        h._succ = h._adj = succ
        h._pred = {v: {u: succ[u][v] for u in nbrs} for v, nbrs in g._pred.items()}
        other.inputs, other.outputs, other.ops = list(self.inputs), list(self.outputs), self.ops
        other._value_names.used = set(self._value_names.used)
        other._op_names.used = set(self._op_names.used)
        return other

    def subgraph(self, inputs: list, outputs: list) -> Graph:
        """The ops that compute ``outputs`` from ``inputs`` (values of this graph), as a new graph
        whose inputs are ``inputs`` (same keys and names). Raises if an output needs a value that
        is neither computed from ``inputs`` nor a weight or constant."""
        needed, stack, feeds = set(), list(outputs), set(inputs)
        while stack:
            v = stack.pop()
            if v in needed or v in feeds:
                continue
            needed.add(v)
            op = self.producer(v)
            if op is None:
                if self.kind(v) not in ("weight", "const"):
                    raise ValueError(f"Value {self.name(v)!r} is needed but is not computed from the given inputs.")
                continue
            needed.add(op)
            stack.extend(self.nx._node[op]["inputs"])
        other = Graph()
        for v in inputs:
            s = self.value(v)
            other.add_value(s.name, s.spec, "input", None, key=v)
        other.inputs = list(inputs)
        for op in self.ops:
            if op not in needed:
                continue
            o = self.op(op)
            for v in o.inputs:
                if v not in other.nx:
                    s = self.value(v)
                    other.add_value(s.name, s.spec, s.kind, s.payload, key=v)
            other.add_op(
                o.prim,
                o.attrs,
                list(o.inputs),
                o.name,
                o.scope,
                output_specs=[self.spec(v) for v in o.outputs],
                output_keys=o.outputs,
                output_names=[self.name(v) for v in o.outputs],
                key=op,
            )
        other.outputs = list(outputs)
        return other

    # -- invariants ---------------------------------------------------------------------
    def lint(self) -> None:
        """Check the IR's invariants; raise ``ValueError`` describing the first violation.

        Checked: acyclic; value kinds known; inputs, weights and constants have no producer
        and intermediates exactly one; each op's recorded operand lists agree with its edges
        (input ports 0..n-1); ``ops`` is a topological order of all op nodes; inputs and
        outputs are values of the graph; op names are unique and value names are unique;
        every op's recorded output specs equal what its ``infer`` rule gives for its inputs.
        """
        g = self.nx
        if not nx.is_directed_acyclic_graph(g):
            raise ValueError("Graph lint: the graph has a cycle.")
        names = {}
        for n, d in g.nodes(data=True):
            other = names.setdefault((d["is_op"], d["name"]), n)
            if other is not n:
                kind = "ops" if d["is_op"] else "values"
                raise ValueError(f"Graph lint: name {d['name']!r} is used by two {kind}.")
            if d["is_op"]:
                continue
            if d["kind"] not in VALUE_KINDS:
                raise ValueError(f"Graph lint: value {d['name']!r} has unknown kind {d['kind']!r}.")
            producers = g.in_degree(n)
            expected = 1 if d["kind"] == "intermediate" else 0
            if producers != expected:
                raise ValueError(
                    f"Graph lint: {d['kind']} value {d['name']!r} has {producers} producers, expected {expected}."
                )
        position = {op: i for i, op in enumerate(self.ops)}
        all_ops = [n for n, d in g.nodes(data=True) if d["is_op"]]
        if len(all_ops) != len(self.ops) or set(all_ops) != set(position):
            raise ValueError("Graph lint: `ops` does not list every op node exactly once.")
        for op in self.ops:
            d = g.nodes[op]
            edges = sorted((e["port"], u) for u, _, e in g.in_edges(op, data=True))
            if [p for p, _ in edges] != list(range(len(edges))) or [u for _, u in edges] != d["inputs"]:
                raise ValueError(f"Graph lint: op {d['name']!r} has input edges {edges} for inputs {d['inputs']}.")
            out_edges = sorted((e["port"], v) for _, v, e in g.out_edges(op, data=True))
            if [v for _, v in out_edges] != d["outputs"]:
                raise ValueError(f"Graph lint: op {d['name']!r} has output edges that disagree with its outputs.")
            for v in d["inputs"]:
                for producer in g.predecessors(v):
                    if position[producer] >= position[op]:
                        raise ValueError(f"Graph lint: `ops` is not topological at {d['name']!r}.")
            expected = d["prim"].infer([self.spec(v) for v in d["inputs"]], **d["attrs"])
            got = [self.spec(v) for v in d["outputs"]]
            if [tuple(s) for s in expected] != [tuple(s) for s in got]:
                raise ValueError(f"Graph lint: op {d['name']!r} records outputs {got}, its rule infers {expected}.")
        for v in self.inputs + self.outputs:
            if v not in g or g.nodes[v]["is_op"]:
                raise ValueError("Graph lint: an input or output is not a value of the graph.")

    # -- printing -----------------------------------------------------------------------
    def __str__(self) -> str:
        lines = ["graph("]
        for v in self.inputs:
            lines.append(f"    %{self.name(v)}: {self.spec(v)},")
        lines.append(") {")
        for op in self.ops:
            o = self.op(op)
            outs = ", ".join(f"%{self.name(v)}: {self.spec(v)}" for v in o.outputs)
            ins = ", ".join(self._operand(v) for v in o.inputs)
            attrs = "".join(f", {k}={_short(a)}" for k, a in o.attrs.items())
            lines.append(f"    {outs} = {o.prim.name}({ins}{attrs})  # {o.name}")
        lines.append("    return " + ", ".join(f"%{self.name(v)}" for v in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.inputs)} inputs, {len(self.ops)} ops, {len(self.outputs)} outputs>"

    def _operand(self, value) -> str:
        d = self.nx._node[value]
        if d["kind"] == "weight":
            return f"@{d['name']}"
        if d["kind"] == "const":
            return f"const({d['spec']})"
        return f"%{d['name']}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
