"""The NumPy executor: a graph compiled once into a flat schedule of kernels and slots.

networkx is for building and viewing; running goes through ``CompiledGraph.run``, a loop
over ``(kernel, input_slots, output_slots)`` tuples with no graph lookups. Weights are
read through the Variables' arrays, which ``assign`` updates in place, so a compiled graph
always sees current weights.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.graph import Graph


class CompiledGraph:
    """A graph ready to run: ``run([x0, x1, ...]) -> [y0, y1, ...]`` on NumPy arrays."""

    def __init__(self, graph: Graph):
        slot = {}
        template = []
        for v in graph.inputs:
            slot.setdefault(v, len(template))
            template.append(None)
        for op in graph.ops:
            for v in graph.op_inputs(op):
                if v in slot:
                    continue
                d = graph.nx.nodes[v]
                slot[v] = len(template)
                template.append(d["payload"]._value if d["kind"] == "weight" else d["payload"])
            for v in graph.op_outputs(op):
                slot[v] = len(template)
                template.append(None)
        self.input_slots = [slot[v] for v in graph.inputs]
        self.output_slots = [slot[v] for v in graph.outputs]
        steps = []
        for op in graph.ops:
            d = graph.nx.nodes[op]
            kernel = d["prim"].kernel(d["attrs"])
            steps.append(
                (kernel, tuple(slot[v] for v in graph.op_inputs(op)), tuple(slot[v] for v in graph.op_outputs(op)))
            )
        self.steps = steps
        self.template = template
        self.single_input = len(self.input_slots) == 1 and self.input_slots[0] == 0

    def run(self, feeds: list) -> list:
        env = self.template.copy()
        for s, x in zip(self.input_slots, feeds):
            env[s] = x
        for kernel, ins, outs in self.steps:
            results = kernel(*[env[i] for i in ins])
            for o, r in zip(outs, results):
                env[o] = r
        return [env[s] for s in self.output_slots]


def as_array(x, dtype: str) -> np.ndarray:
    """Feed conversion: arrays keep their buffer when the dtype already matches."""
    if isinstance(x, np.ndarray) and x.dtype == dtype:
        return x
    return np.asarray(x, dtype=dtype)
