"""Central finite differences (float64) against the vjp rules, through GradientProgram."""

from __future__ import annotations

import numpy as np

import irtool as keras
from irtool import ops
from irtool.train.autodiff import GradientProgram


def check_gradients(build, arrays, eps=1e-6, atol=1e-6, rtol=1e-5, wrt=None, seed=0, weight_samples=0):
    """``build(*symbolic_inputs)`` returns tensor(s); compare d(sum(out * R))/d(input) both ways.

    ``wrt`` lists the indices of the inputs to differentiate (default: every float input).
    With ``weight_samples``, that many entries of every trainable weight of the traced model are
    checked too (float64 weights: build the layers with ``dtype="float64"``).
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a) for a in arrays]
    inputs = [keras.Input(batch_shape=a.shape, dtype=a.dtype.name) for a in arrays]
    outs = build(*inputs)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    projections = [rng.standard_normal(o.shape).astype(o.dtype) for o in outs]
    loss = None
    for o, r in zip(outs, projections):
        term = ops.sum(o * r)
        loss = term if loss is None else loss + term
    model = keras.Model(inputs, loss)
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if np.issubdtype(a.dtype, np.floating)]
    weights = list(model.trainable_weights) if weight_samples else []
    program = GradientProgram(model.graph, [model.graph.inputs[i] for i in wrt] + weights, training=False)
    _, grads = program.run(arrays)

    def loss_at(values):
        return float(model._run_flat(list(values))[0])

    for k, i in enumerate(wrt):
        numeric = np.zeros_like(arrays[i], dtype="float64")
        flat = numeric.reshape(-1)
        for j in range(arrays[i].size):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
        np.testing.assert_allclose(grads[k], numeric, atol=atol, rtol=rtol, err_msg=f"gradient of input {i}")
    for w, g in zip(weights, grads[len(wrt) :]):
        value = w._value
        for j in rng.choice(value.size, size=min(weight_samples, value.size), replace=False):
            index = np.unravel_index(j, value.shape)
            saved = value[index]
            value[index] = saved + eps
            plus = loss_at(arrays)
            value[index] = saved - eps
            minus = loss_at(arrays)
            value[index] = saved
            numeric = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(g.reshape(-1)[j], numeric, atol=atol, rtol=rtol, err_msg=w.path)
    return grads
