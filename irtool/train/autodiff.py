"""Reverse-mode differentiation over the graph IR, compiled once into two flat schedules.

``GradientProgram(graph, wrt)`` prepares, for a graph whose first output is a scalar loss:

- a **forward schedule** (like the executor's, but keeping every value the backward pass
  reads; in training mode primitives use their ``training_kernel``: dropout noise, batch
  statistics), and
- a **backward schedule**: the ops that lie between the differentiated values (``wrt``, the
  trainable weights, or any graph values) and the loss, in reverse order, each calling its
  primitive's ``vjp`` rule and accumulating gradients where values fan out.

Only values that depend on something in ``wrt`` carry gradients, so frozen branches and
integer inputs cost nothing. There are no networkx lookups at run time.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.graph import Graph
from irtool.ops import fast_kernels


class GradientProgram:
    """``run(feeds) -> (outputs, gradients)`` for the values in ``wrt`` (same order).

    The loss is ``graph.outputs[0]`` (reduced to a scalar: its gradient seed is 1).
    """

    def __init__(self, graph: Graph, wrt: list, training: bool = True, rng=None):
        self.graph = graph
        self.training = training
        self.rng = rng if rng is not None else np.random.default_rng()
        slot: dict = {}
        template: list = []

        def slot_of(v):
            if v not in slot:
                slot[v] = len(template)
                template.append(graph.constant_array(v))  # None for inputs and intermediates
            return slot[v]

        self.input_slots = [slot_of(v) for v in graph.inputs]
        needs = set(wrt)
        forward, backward = [], []
        for op in graph.ops:
            o = graph.op(op)
            prim, attrs, in_values, out_values = o.prim, o.attrs, o.inputs, o.outputs
            ins = [slot_of(v) for v in in_values]
            outs = [slot_of(v) for v in out_values]
            aux_slot = None
            if training and prim.returns_aux:
                aux_slot = len(template)
                template.append(None)
            kernel = prim.training_kernel(attrs, self.rng) if training else prim.kernel(attrs)
            forward.append((kernel, tuple(ins), tuple(outs), prim.num_outputs == 1, aux_slot))
            grad_mask = tuple(v in needs for v in in_values)
            if any(grad_mask):
                needs.update(out_values)
                backward.append((prim, attrs, tuple(ins), tuple(outs), grad_mask, aux_slot))
        backward.reverse()
        self.forward_steps = forward
        self.backward_steps = backward
        self.template = template
        self.output_slots = [slot_of(v) for v in graph.outputs]
        # A weight the graph never reads gets a zero gradient (slot None).
        self.wrt = list(wrt)
        self.wrt_slots = [slot_of(v) if v in slot else None for v in wrt]
        # Float32 convolutions run through ONNX Runtime's kernels when training; BLAS then runs on
        # one thread so its spinning workers leave the cores to ONNX Runtime (ops.fast_kernels).
        self.limit_blas = training and any(
            getattr(graph.prim(op), "uses_fast_kernels", False)
            and graph.spec(graph.op_inputs(op)[0]).dtype == "float32"
            for op in graph.ops
        )

    def run(self, feeds: list, seed=None):
        """Forward then backward; returns ``(outputs, gradients)`` (see ``_run``)."""
        if self.limit_blas:
            with fast_kernels.blas_limited():
                return self._run(feeds, seed)
        return self._run(feeds, seed)

    def _run(self, feeds: list, seed=None):
        """Forward then backward; returns ``(outputs, gradients)``.

        ``seed`` is the gradient of the first output (default: ones, i.e. d loss / d loss).
        Gradients of ``wrt`` values the loss does not depend on are zeros.
        """
        env = self.template.copy()
        for s, x in zip(self.input_slots, feeds):
            env[s] = x
        for kernel, ins, outs, single, aux_slot in self.forward_steps:
            result = kernel(*[env[i] for i in ins])
            if aux_slot is not None:
                result, env[aux_slot] = result
            if single:
                env[outs[0]] = result
            else:
                for o, r in zip(outs, result):
                    env[o] = r
        outputs = [env[s] for s in self.output_slots]
        loss = outputs[0]
        grads: dict = {self.output_slots[0]: np.ones_like(loss) if seed is None else np.asarray(seed, loss.dtype)}
        for prim, attrs, ins, outs, grad_mask, aux_slot in self.backward_steps:
            cotangents = [grads.get(o) for o in outs]
            if all(c is None for c in cotangents):
                continue
            if any(c is None for c in cotangents):
                cotangents = [np.zeros_like(env[o]) if c is None else c for c, o in zip(cotangents, outs)]
            in_arrays = [env[i] for i in ins]
            out_arrays = [env[o] for o in outs]
            extra = {"needs": grad_mask} if prim.vjp_uses_needs else {}
            if aux_slot is not None:
                in_grads = prim.training_vjp(cotangents, in_arrays, out_arrays, env[aux_slot], **attrs, **extra)
            else:
                in_grads = prim.vjp(cotangents, in_arrays, out_arrays, **attrs, **extra)
            for i, g, wanted in zip(ins, in_grads, grad_mask):
                if not wanted or g is None:
                    continue
                previous = grads.get(i)
                grads[i] = g if previous is None else previous + g
        gradients = []
        for v, s in zip(self.wrt, self.wrt_slots):
            g = None if s is None else grads.get(s)
            if g is None:
                g = np.zeros_like(env[s] if s is not None else np.asarray(v))
            gradients.append(g)
        return outputs, gradients
