"""An independent reference of Keras' recurrent layers: one sample, one step at a time, float64.

Written from Keras 3's cells (``keras/src/layers/rnn/{simple_rnn,lstm,gru}.py``) and the
backend's masked loop (``keras/src/backend/*/rnn.py``): a masked step keeps the states and outputs
the previous output (zeros before any unmasked step, or always zeros with
``zero_output_for_mask``); ``go_backwards`` runs from the last step and returns the outputs in
that order.
"""

from __future__ import annotations

import numpy as np

ACTS = {
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "relu": lambda v: np.maximum(v, 0.0),
    "linear": lambda v: v,
    "hard_sigmoid": lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0),
    "softsign": lambda v: v / (1.0 + np.abs(v)),
    "softplus": lambda v: np.log1p(np.exp(v)),
    "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0.0))),
    "leaky_relu": lambda v: np.where(v >= 0, v, 0.2 * v),
}
N_STATES = {"simple_rnn": 1, "gru": 1, "lstm": 2}


def step(kind, x, states, kernel, recurrent, bias, act="tanh", rec_act="sigmoid", reset_after=True):
    """One step of one sample: ``x (F,)``, ``states`` list of ``(H,)``. Returns the new states."""
    f, g = ACTS[act], ACTS[rec_act]
    u = recurrent.shape[0]
    if kind == "simple_rnn":
        return [f(x @ kernel + states[0] @ recurrent + (0 if bias is None else bias))]
    if kind == "lstm":
        h, c = states
        b = np.zeros(4 * u) if bias is None else bias
        gate = [
            x @ kernel[:, k * u : (k + 1) * u] + h @ recurrent[:, k * u : (k + 1) * u] + b[k * u : (k + 1) * u]
            for k in range(4)
        ]
        i, fo, cc, o = g(gate[0]), g(gate[1]), f(gate[2]), g(gate[3])
        c = fo * c + i * cc
        return [o * f(c), c]
    (h,) = states
    if bias is None:
        bx, bh = np.zeros(3 * u), np.zeros(3 * u)
    elif reset_after:
        bx, bh = bias[0], bias[1]
    else:
        bx, bh = bias, np.zeros(3 * u)
    kz, kr, kh = (kernel[:, k * u : (k + 1) * u] for k in range(3))
    rz, rr, rh = (recurrent[:, k * u : (k + 1) * u] for k in range(3))
    z = g(x @ kz + bx[:u] + h @ rz + bh[:u])
    r = g(x @ kr + bx[u : 2 * u] + h @ rr + bh[u : 2 * u])
    if reset_after:
        hh = f(x @ kh + bx[2 * u :] + r * (h @ rh + bh[2 * u :]))
    else:
        hh = f(x @ kh + bx[2 * u :] + (r * h) @ rh)
    return [z * h + (1 - z) * hh]


def run(kind, x, weights, states=None, mask=None, go_backwards=False, zero_output_for_mask=False, **cell):
    """A whole layer over ``x (B, T, F)``: ``(outputs (B, T, H) in processing order, final states)``."""
    kernel, recurrent, bias = (np.asarray(w, np.float64) if w is not None else None for w in weights)
    batch, time, _ = x.shape
    u = recurrent.shape[0]
    outputs = np.zeros((batch, time, u))
    finals = []
    for n in range(batch):
        s = [np.zeros(u)] * N_STATES[kind] if states is None else [np.asarray(st[n], np.float64) for st in states]
        previous = np.zeros(u)
        steps = range(time - 1, -1, -1) if go_backwards else range(time)
        for k, t in enumerate(steps):
            if mask is not None and not mask[n, t]:
                out = np.zeros(u) if zero_output_for_mask else previous
            else:
                s = step(kind, np.asarray(x[n, t], np.float64), s, kernel, recurrent, bias, **cell)
                out = s[0]
            outputs[n, k] = previous = out
        finals.append(s)
    final_states = [np.stack([f[i] for f in finals]) for i in range(N_STATES[kind])]
    return outputs, final_states


def layer(kind, x, weights, states=None, mask=None, return_sequences=False, go_backwards=False, **kw):
    """Keras' layer outputs ``[output, *states]``."""
    seq, finals = run(kind, x, weights, states, mask, go_backwards, **kw)
    return [seq if return_sequences else seq[:, -1]] + finals


def bidirectional(
    kind, x, forward, backward, states=None, mask=None, return_sequences=False, merge_mode="concat", **cell
):
    """Keras' Bidirectional outputs ``[output(s)..., forward states..., backward states...]``."""
    n = N_STATES[kind]
    fs, bs = (None, None) if states is None else (states[:n], states[n:])
    zero = bool(return_sequences)
    y_seq, f_final = run(kind, x, forward, fs, mask, False, zero, **cell)
    b_seq, b_final = run(kind, x, backward, bs, mask, True, zero, **cell)
    y, y_rev = (y_seq, b_seq[:, ::-1]) if return_sequences else (y_seq[:, -1], b_seq[:, -1])
    merged = {
        "concat": lambda: [np.concatenate([y, y_rev], -1)],
        "sum": lambda: [y + y_rev],
        "mul": lambda: [y * y_rev],
        "ave": lambda: [(y + y_rev) / 2],
        None: lambda: [y, y_rev],
    }[merge_mode]()
    return merged + f_final + b_final


def random_weights(rng, kind, features, units, use_bias=True, reset_after=True, scale=0.6):
    gates = {"simple_rnn": 1, "gru": 3, "lstm": 4}[kind]
    kernel = (rng.standard_normal((features, gates * units)) * scale).astype("float32")
    recurrent = (rng.standard_normal((units, gates * units)) * scale).astype("float32")
    bias = None
    if use_bias:
        shape = (2, gates * units) if kind == "gru" and reset_after else (gates * units,)
        bias = (rng.standard_normal(shape) * scale).astype("float32")
    return [kernel, recurrent, bias]


def right_padded_mask(batch, time, rng):
    """A right-padded mask with lengths ``time``, ``1`` and random ones in between."""
    lengths = np.concatenate([[time, 1], rng.integers(1, time + 1, batch - 2)])[:batch]
    return np.arange(time)[None, :] < lengths[:, None]
