"""The NumPy executor: a graph compiled once into straight-line Python code.

networkx is for building and viewing; running goes through ``CompiledGraph.run``. At compile
time every value gets a local variable and every op one line ``v7 = k3(v2, c0)``, and the
resulting function is created with ``exec`` from that generated source (our own text, never
read from a file). So the inner loop has no graph lookups, no list indexing and exactly one
Python call per primitive. Weights are bound as the Variables' arrays, which ``assign``
updates in place, so a compiled graph always sees current weights.

The executor runs whatever graph it is given; fusions that make inference faster (one
``matmul_add`` for a Dense layer's product, bias and ReLU) are passes run on the graph before.
A primitive may ask for its constant operands in another layout (``bound_operand``: a bias as
a ``(1, m)`` view), bound once here instead of reshaped on every call.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.graph import Graph
from irtool.strings import to_string_array


class CompiledGraph:
    """A graph ready to run: ``run([x0, x1, ...]) -> [y0, y1, ...]`` on NumPy arrays.

    ``source`` holds the generated code, readable for debugging. With ``float_dtype`` (e.g.
    ``"float64"``, for a high-precision reference run) floating weights and constants are bound
    as copies in that dtype; the kernels follow their operands' dtype, so feeding arrays of that
    dtype runs the whole graph in it (but for explicit casts).
    """

    def __init__(self, graph: Graph, float_dtype=None):
        local: dict = {}
        bound: dict = {}
        for i, v in enumerate(graph.inputs):
            local.setdefault(v, f"x{i}")
        # A local is reused once its value is dead (after its last reader), so the array it held
        # is freed there and its memory serves the next op's output: a 1,000-layer chain then
        # cycles through a few warm buffers instead of keeping 1,000 arrays alive until return.
        last_read = {v: k for k, op in enumerate(graph.ops) for v in graph.op(op).inputs}
        kept = set(graph.outputs)
        free: list[str] = []
        count = len(local)
        lines = []
        for k, op in enumerate(graph.ops):
            o = graph.op(op)
            args = []
            for index, v in enumerate(o.inputs):
                name = local.get(v)
                if name is None:  # a weight or constant, bound once
                    name = local[v] = f"c{len(bound)}"
                    array = graph.constant_array(v)
                    if float_dtype is not None and np.issubdtype(np.asarray(array).dtype, np.floating):
                        array = np.asarray(array, dtype=float_dtype)
                    bound[name] = array
                if name in bound:  # the primitive may want a view of it (a bias as a (1, m) row)
                    array = o.prim.bound_operand(o.attrs, index, bound[name])
                    if array is not bound[name]:
                        name = f"c{len(bound)}"
                        bound[name] = array
                args.append(name)
            for v in dict.fromkeys(o.inputs):  # the inputs read for the last time, once each
                if last_read[v] == k and v not in kept and local[v] not in bound:
                    free.append(local[v])
            outs = []
            for v in o.outputs:
                if free:
                    local[v] = free.pop()
                else:
                    local[v], count = f"v{count}", count + 1
                outs.append(local[v])
            kernel = f"k{k}"
            bound[kernel] = o.prim.kernel(o.attrs)
            target = outs[0] if o.prim.num_outputs == 1 else ", ".join(outs) + ","
            lines.append(f"    {target} = {kernel}({', '.join(args)})")
            free.extend(local[v] for v in o.outputs if v not in last_read and v not in kept)  # never read
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
    if dtype == "string":
        return to_string_array(x)
    if isinstance(x, np.ndarray) and x.dtype == dtype:
        return x
    return np.asarray(x, dtype=dtype)
