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
from irtool.ops.gradients import ReverseSweep


class GradientProgram(ReverseSweep):
    """``run(feeds) -> (outputs, gradients)`` for the values in ``wrt`` (same order).

    The loss is ``graph.outputs[0]`` (reduced to a scalar: its gradient seed is 1). The
    schedules are ``ops.gradients.ReverseSweep``'s; this adds the loss seed and the BLAS limit.
    """

    def __init__(self, graph: Graph, wrt: list, training: bool = True, rng=None):
        super().__init__(graph, wrt, training=training, rng=rng)
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
        env = self.forward(feeds)
        outputs = self.outputs(env)
        loss = outputs[0]
        first = np.ones_like(loss) if seed is None else np.asarray(seed, loss.dtype)
        return outputs, self.backward(env, [first] + [None] * (len(outputs) - 1))
