"""Helpers shared by the primitives' ``vjp`` rules (reverse-mode derivatives in NumPy).

Contract of ``Primitive.vjp(cotangents, inputs, outputs, **attrs)``: ``cotangents`` holds the
gradient of the loss with respect to each output (``None`` where no gradient flows),
``inputs``/``outputs`` are the forward pass' arrays, and it returns one gradient per input,
shaped like that input, or ``None`` for inputs that are not differentiable (integer indices,
booleans, shapes).
"""

from __future__ import annotations

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched to reach its shape."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def is_differentiable(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


class ReverseSweep:
    """A graph compiled once into a forward schedule and a reverse (backward) schedule.

    The engine under ``train.autodiff.GradientProgram`` (a model's loss), and the one a
    primitive with a graph attribute uses to differentiate that graph (``ops.scan``'s step
    body), which is why it lives here, below the trainer. ``forward(feeds)`` returns the
    environment (every value the backward pass reads); ``backward(env, cotangents)`` takes one
    cotangent per graph output (``None``: no gradient) and returns the gradients of ``wrt``
    (zeros where no gradient reaches). Only values that depend on something in ``wrt`` carry
    gradients. In training mode primitives use their ``training_kernel`` (dropout noise, batch
    statistics). There are no networkx lookups at run time.
    """

    def __init__(self, graph, wrt: list, training: bool = False, rng=None):
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
        # A value in `wrt` the graph never reads gets a zero gradient (slot None).
        self.wrt = list(wrt)
        self.wrt_slots = [slot_of(v) if v in slot else None for v in wrt]

    def forward(self, feeds: list) -> list:
        """Run the forward schedule on ``feeds`` (one array per graph input): the environment."""
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
        return env

    def outputs(self, env: list) -> list:
        return [env[s] for s in self.output_slots]

    def backward(self, env: list, cotangents: list) -> list:
        """The gradients of ``wrt`` given one cotangent per graph output (``None``: none flows).
        An output listed twice, or an output that is an input, accumulates as it should."""
        grads: dict = {}
        for s, c in zip(self.output_slots, cotangents):
            if c is not None:
                grads[s] = c if s not in grads else grads[s] + c
        for prim, attrs, ins, outs, grad_mask, aux_slot in self.backward_steps:
            outgoing = [grads.get(o) for o in outs]
            if all(c is None for c in outgoing):
                continue
            if any(c is None for c in outgoing):
                outgoing = [np.zeros_like(env[o]) if c is None else c for c, o in zip(outgoing, outs)]
            in_arrays = [env[i] for i in ins]
            out_arrays = [env[o] for o in outs]
            extra = {"needs": grad_mask} if prim.vjp_uses_needs else {}
            if aux_slot is not None:
                in_grads = prim.training_vjp(outgoing, in_arrays, out_arrays, env[aux_slot], **attrs, **extra)
            else:
                in_grads = prim.vjp(outgoing, in_arrays, out_arrays, **attrs, **extra)
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
        return gradients
