"""The graph IR: a networkx multigraph of primitive operations and the values they use.

There are two kinds of nodes. **Op nodes** are applications of a primitive (``matmul``,
``add``...); **value nodes** are the tensors flowing between them: model inputs, weights,
constants and intermediates. Edges go value -> op (attribute ``port``: the op's input
index) and op -> value (``port``: the op's output index). Because the same value can feed
one op twice (``x * x``) the graph is a ``MultiDiGraph``.

The graph knows nothing of layers or ONNX: op nodes carry an opaque ``prim`` object with
``infer`` (shape/dtype inference) and an opaque ``scope`` (the layer call they belong to),
and each node has a readable ``name``. ``ops`` is kept in a deterministic topological
order, which the executor and the ONNX lowering follow.
"""

from __future__ import annotations

import networkx as nx

from irtool.ir.spec import TensorSpec

VALUE_KINDS = ("input", "weight", "const", "intermediate")


class Graph:
    """A DAG of op and value nodes with ordered inputs, outputs and a topological op list.

    Example::

        print(model.graph)      # one op per line, with names, shapes and dtypes
        model.graph.lint()      # raises if an invariant is broken
    """

    def __init__(self):
        self.nx = nx.MultiDiGraph()
        self.inputs: list = []
        self.outputs: list = []
        self.ops: list = []

    # -- construction -------------------------------------------------------------------
    def add_value(self, key, name: str, spec: TensorSpec, kind: str, payload=None) -> None:
        self.nx.add_node(key, kind=kind, name=name, spec=spec, payload=payload, is_op=False)

    def add_op(self, key, name: str, prim, attrs: dict, scope, inputs: list, outputs: list) -> None:
        self.nx.add_node(key, name=name, prim=prim, attrs=attrs, scope=scope, is_op=True)
        for port, value in enumerate(inputs):
            self.nx.add_edge(value, key, port=port)
        for port, value in enumerate(outputs):
            self.nx.add_edge(key, value, port=port)
        self.ops.append(key)

    # -- queries ------------------------------------------------------------------------
    def op_inputs(self, op) -> list:
        edges = sorted((d["port"], u) for u, _, d in self.nx.in_edges(op, data=True))
        return [u for _, u in edges]

    def op_outputs(self, op) -> list:
        edges = sorted((d["port"], v) for _, v, d in self.nx.out_edges(op, data=True))
        return [v for _, v in edges]

    def values(self, kind: str | None = None) -> list:
        return [n for n, d in self.nx.nodes(data=True) if not d["is_op"] and (kind is None or d["kind"] == kind)]

    def name(self, node) -> str:
        return self.nx.nodes[node]["name"]

    def spec(self, value) -> TensorSpec:
        return self.nx.nodes[value]["spec"]

    def ancestors(self, values) -> set:
        """All nodes (ops and values) that ``values`` depend on, the values included."""
        seen = set(values)
        for v in values:
            seen |= nx.ancestors(self.nx, v)
        return seen

    # -- invariants ---------------------------------------------------------------------
    def lint(self) -> None:
        """Check the IR's invariants; raise ``ValueError`` describing the first violation.

        Checked: acyclic; value kinds known; inputs, weights and constants have no producer
        and intermediates exactly one; op input ports are 0..n-1; ``ops`` is a topological
        order of all op nodes; outputs are values of the graph; op names are unique and value names are unique; every
        op's recorded output specs equal what its ``infer`` rule gives for its inputs.
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
            ports = sorted(e["port"] for _, _, e in g.in_edges(op, data=True))
            if ports != list(range(len(ports))):
                raise ValueError(f"Graph lint: op {d['name']!r} has input ports {ports}.")
            ins = self.op_inputs(op)
            for v in ins:
                for producer in g.predecessors(v):
                    if position[producer] >= position[op]:
                        raise ValueError(f"Graph lint: `ops` is not topological at {d['name']!r}.")
            expected = d["prim"].infer([self.spec(v) for v in ins], **d["attrs"])
            got = [self.spec(v) for v in self.op_outputs(op)]
            if [tuple(s) for s in expected] != [tuple(s) for s in got]:
                raise ValueError(f"Graph lint: op {d['name']!r} records outputs {got}, its rule infers {expected}.")
        for v in self.inputs + self.outputs:
            if v not in g or g.nodes[v]["is_op"]:
                raise ValueError("Graph lint: an input or output is not a value of the graph.")

    # -- printing -----------------------------------------------------------------------
    def __str__(self) -> str:
        g = self.nx
        lines = ["graph("]
        for v in self.inputs:
            lines.append(f"    %{self.name(v)}: {self.spec(v)},")
        lines.append(") {")
        for op in self.ops:
            d = g.nodes[op]
            outs = ", ".join(f"%{self.name(v)}: {self.spec(v)}" for v in self.op_outputs(op))
            ins = ", ".join(_operand(self, v) for v in self.op_inputs(op))
            attrs = "".join(f", {k}={_short(a)}" for k, a in d["attrs"].items())
            lines.append(f"    {outs} = {d['prim'].name}({ins}{attrs})  # {d['name']}")
        lines.append("    return " + ", ".join(f"%{self.name(v)}" for v in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.inputs)} inputs, {len(self.ops)} ops, {len(self.outputs)} outputs>"


def _operand(graph: Graph, value) -> str:
    d = graph.nx.nodes[value]
    if d["kind"] == "weight":
        return f"@{d['name']}"
    if d["kind"] == "const":
        return f"const({d['spec']})"
    return f"%{d['name']}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
