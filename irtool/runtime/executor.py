"""The NumPy executor: a graph compiled once into straight-line Python code.

networkx is for building and viewing; running goes through ``CompiledGraph.run``. At compile
time every value gets a local variable and every op one line ``v7 = k3(v2, w0)``, and the
resulting function is created with ``exec`` from that generated source (our own text, never
read from a file). So the inner loop has no graph lookups, no list indexing and exactly one
Python call per primitive. Weights are bound as the Variables' arrays, which ``assign``
updates in place, so a compiled graph always sees current weights.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.graph import Graph


class CompiledGraph:
    """A graph ready to run: ``run([x0, x1, ...]) -> [y0, y1, ...]`` on NumPy arrays.

    ``source`` holds the generated code, readable for debugging.
    """

    def __init__(self, graph: Graph):
        local: dict = {}
        bound: dict = {}
        for i, v in enumerate(graph.inputs):
            local.setdefault(v, f"x{i}")
        lines = []
        fused = _dense_pairs(graph)
        absorbed = set(fused.values())
        for k, op in enumerate(graph.ops):
            if op in absorbed:
                continue
            d = graph.nx.nodes[op]
            if op in fused:  # y = x @ w + b as two C calls and no temporary: x.dot(w), then y += b
                add = fused[op]
                x, w = (_operand(graph, v, local, bound) for v in graph.op_inputs(op))
                (product,) = graph.op_outputs(op)
                (bias,) = [v for v in graph.op_inputs(add) if v is not product]
                b = _operand(graph, bias, local, bound)
                (out,) = graph.op_outputs(add)
                y = local.setdefault(out, f"v{len(local)}")
                lines.append(f"    {y} = {x}.dot({w})")
                lines.append(f"    {y} += {b}")
                continue
            args = []
            for v in graph.op_inputs(op):
                name = local.get(v)
                if name is None:
                    vd = graph.nx.nodes[v]
                    name = local[v] = f"c{len(bound)}"
                    bound[name] = vd["payload"]._value if vd["kind"] == "weight" else vd["payload"]
                args.append(name)
            outs = []
            for v in graph.op_outputs(op):
                outs.append(local.setdefault(v, f"v{len(local)}"))
            kernel = f"k{k}"
            bound[kernel] = d["prim"].kernel(d["attrs"])
            target = outs[0] if d["prim"].num_outputs == 1 else ", ".join(outs) + ","
            lines.append(f"    {target} = {kernel}({', '.join(args)})")
        params = ", ".join(f"x{i}" for i in range(len(graph.inputs)))
        returns = ", ".join(local[v] for v in graph.outputs)
        self.source = f"def run({params}):\n" + "\n".join(lines) + f"\n    return [{returns}]\n"
        namespace = dict(bound)
        exec(compile(self.source, f"<irtool compiled {len(graph.ops)} ops>", "exec"), namespace)
        self._run = namespace["run"]

    def run(self, feeds: list) -> list:
        return self._run(*feeds)


def as_array(x, dtype: str) -> np.ndarray:
    """Feed conversion: arrays keep their buffer when the dtype already matches."""
    if isinstance(x, np.ndarray) and x.dtype == dtype:
        return x
    return np.asarray(x, dtype=dtype)


def _operand(graph, v, local: dict, bound: dict) -> str:
    name = local.get(v)
    if name is None:
        vd = graph.nx.nodes[v]
        name = local[v] = f"c{len(bound)}"
        bound[name] = vd["payload"]._value if vd["kind"] == "weight" else vd["payload"]
    return name


def _dense_pairs(graph) -> dict:
    """``{matmul op: add op}`` for ``add(matmul(x, w), b)`` that ``y = x.dot(w); y += b``
    computes exactly: x and w 2-D of one float dtype (``ndarray.dot`` is ``matmul`` there,
    with less call overhead), the product read only by the add and not a graph output (it is
    updated in place), and b a 1-D weight or constant of the same dtype and the product's
    static last dimension (so the in-place add broadcasts only b)."""
    nodes = graph.nx.nodes
    outputs = {id(v) for v in graph.outputs}
    pairs = {}
    for op in graph.ops:
        if nodes[op]["prim"].name != "matmul":
            continue
        ins = graph.op_inputs(op)
        (product,) = graph.op_outputs(op)
        spec = nodes[product]["spec"]
        if id(product) in outputs or spec.dtype not in ("float32", "float64"):
            continue
        if len(ins) != 2 or any(len(nodes[v]["spec"].shape) != 2 for v in ins):
            continue
        consumers = list(graph.nx.successors(product))
        if len(consumers) != 1 or graph.nx.number_of_edges(product, consumers[0]) != 1:
            continue
        add = consumers[0]
        if nodes[add]["prim"].name != "add":
            continue
        (bias,) = [v for v in graph.op_inputs(add) if v is not product]
        (out,) = graph.op_outputs(add)
        bspec = nodes[bias]["spec"]
        if (
            nodes[bias]["kind"] not in ("weight", "const")
            or bspec.dtype != spec.dtype
            or nodes[out]["spec"].dtype != spec.dtype
            or len(bspec.shape) != 1
            or bspec.shape[0] is None
            or bspec.shape[0] != spec.shape[-1]
        ):
            continue
        pairs[op] = add
    return pairs
