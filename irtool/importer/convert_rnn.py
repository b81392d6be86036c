"""Converters for ONNX's ``RNN``, ``GRU`` and ``LSTM`` onto irtool's fused ``recurrent`` primitive.

The primitive holds Keras' weights (``kernel (F, G*H)``, ``recurrent_kernel (H, G*H)``,
``bias``, gate blocks LSTM ``i, f, c, o`` / GRU ``z, r, h``), so the import repacks ONNX's
``W (D, G*H, F)``, ``R (D, G*H, H)``, ``B (D, 2*G*H)`` once, per direction: LSTM rows from ONNX's
``i, o, f, c`` order; the two biases summed (Keras has one), except a GRU with
``linear_before_reset=1``, which is Keras' ``reset_after=True`` with its ``(2, 3H)`` bias. This is
the inverse of ``irtool.ops.rnn_lowering.pack_weights``, so a re-export writes the same node.

ONNX's outputs are rebuilt from the primitive's: ``Y`` is ``(T, D, B, H)`` (``layout=1``:
``(B, T, D, H)``) with the reverse direction in input time order, ``Y_h``/``Y_c`` are
``(D, B, H)`` (``(B, D, H)``). ``sequence_lens`` becomes Keras' mask ``t < len`` with zero outputs
on masked steps: for lengths of at least 1 this is ONNX's semantics in both directions (the
reverse direction starts at ``len - 1``, which is where Keras' masked backward pass starts
changing its state).
"""

from __future__ import annotations

import numpy as np

from irtool import ops
from irtool.importer.registry import converter
from irtool.ops.rnn import recurrent

# ONNX activation name -> (irtool's name, the (alpha, beta) it must have, or None when it takes none).
_ACTIVATIONS = {
    "Tanh": ("tanh", None),
    "Sigmoid": ("sigmoid", None),
    "Relu": ("relu", None),
    "Softsign": ("softsign", None),
    "Softplus": ("softplus", None),
    "Affine": ("linear", (1.0, 0.0)),
    "HardSigmoid": ("hard_sigmoid", (1.0 / 6.0, 0.5)),
    "Elu": ("elu", (1.0, None)),
    "LeakyRelu": ("leaky_relu", (0.2, None)),
}
# ONNX's defaults for the parameters of activations given without activation_alpha/beta.
_DEFAULT_PARAMS = {"Affine": (1.0, 0.0), "HardSigmoid": (0.2, 0.5), "Elu": (1.0, None), "LeakyRelu": (0.01, None)}
_TAKES_ALPHA = ("Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu")
_TAKES_BETA = ("Affine", "ScaledTanh", "HardSigmoid")

# kind -> (gates, ONNX's default activations per direction, Keras' row order as ONNX gate blocks)
_KINDS = {
    "RNN": ("simple_rnn", 1, ["Tanh"], [0]),
    "GRU": ("gru", 3, ["Sigmoid", "Tanh"], [0, 1, 2]),
    "LSTM": ("lstm", 4, ["Sigmoid", "Tanh", "Tanh"], [0, 2, 3, 1]),
}


def _activations(node, names, alphas, betas, directions, default):
    """Keras' ``(activation, recurrent_activation)`` from ONNX's per-direction activation lists."""
    names = list(names) if names is not None else default * directions
    if len(names) != len(default) * directions:
        raise node.error(f"expected {len(default) * directions} activations, received {names}")
    alphas, betas = list(alphas or []), list(betas or [])
    mapped = []
    for name in names:
        given = (
            alphas.pop(0) if name in _TAKES_ALPHA and alphas else None,
            betas.pop(0) if name in _TAKES_BETA and betas else None,
        )
        want = _ACTIVATIONS.get(name)
        params = tuple(d if g is None else g for g, d in zip(given, _DEFAULT_PARAMS.get(name, (None, None))))
        if want is None or (
            want[1] is not None
            and not np.allclose([p for p in params if p is not None], [w for w in want[1] if w is not None], rtol=1e-6)
        ):
            known = ", ".join(f"{k}{'' if v[1] is None else v[1]}" for k, v in _ACTIVATIONS.items())
            raise node.error(f"activation {name}{params if want else ''} has no Keras equivalent (supported: {known})")
        mapped.append(want[0])
    per_direction = [mapped[d * len(default) : (d + 1) * len(default)] for d in range(directions)]
    if any(p != per_direction[0] for p in per_direction):
        raise node.error(f"the directions use different activations {per_direction}; Keras shares one set")
    acts = per_direction[0]
    if len(acts) == 3 and acts[1] != acts[2]:
        raise node.error(f"LSTM activations g={acts[1]} and h={acts[2]} differ; Keras uses one `activation` for both")
    return (acts[-1], acts[0]) if len(acts) > 1 else (acts[0], None)


def _row_index(order, units):
    return np.concatenate([np.arange(k * units, (k + 1) * units) for k in order])


@converter("RNN", "GRU", "LSTM", static=(7,), direction="forward", layout=0, linear_before_reset=0, input_forget=0)
def _recurrent(
    node,
    hidden_size,
    direction,
    layout,
    linear_before_reset,
    input_forget,
    activations=None,
    activation_alpha=None,
    activation_beta=None,
    clip=None,
):
    kind, gates, default_acts, order = _KINDS[node.op_type]
    direction = direction.decode() if isinstance(direction, bytes) else direction
    directions = 2 if direction == "bidirectional" else 1
    if clip is not None:
        raise node.error(f"clip={clip} (cell clipping) has no Keras equivalent")
    if input_forget:
        raise node.error("input_forget=1 (coupled input and forget gates) has no Keras equivalent")
    peepholes = node.static(7, "P (peepholes)") if len(node) > 7 else None
    if peepholes is not None and np.any(peepholes):
        raise node.error("non-zero peephole weights P have no Keras equivalent")
    activation, recurrent_activation = _activations(
        node, activations, activation_alpha, activation_beta, directions, default_acts
    )
    units = int(hidden_size)
    rows = _row_index(order, units)
    reset_after = kind == "gru" and bool(linear_before_reset)

    x = node[0]
    if len(x.shape) != 3:
        raise node.error(f"expected X of rank 3, received shape {tuple(x.shape)}")
    if not layout:
        x = ops.transpose(x, (1, 0, 2))  # ONNX's (time, batch, features) to Keras' (batch, time, features)

    def matrices(w):  # (D, G*H, n) -> one Keras (n, G*H) per direction
        return [ops.transpose(ops.take(ops.take(w, d, axis=0), rows, axis=0), (1, 0)) for d in range(directions)]

    def biases(b):  # (D, 2*G*H) -> one Keras bias per direction
        width = gates * units
        parts = []
        for d in range(directions):
            wb = ops.take(ops.take(b, d, axis=0), rows, axis=0)
            rb = ops.take(ops.take(b, d, axis=0), rows + width, axis=0)
            parts.append(ops.stack([wb, rb], axis=0) if reset_after else ops.add(wb, rb))
        return parts

    def by_direction(parts):
        return {"forward": parts[0]} if directions == 1 else {"forward": parts[0], "backward": parts[1]}

    kernels = node.weight_parts(1, lambda w: by_direction(matrices(w)), matrices)
    recurrents = node.weight_parts(2, lambda r: by_direction(matrices(r)), matrices)
    bias_parts = node.weight_parts(3, lambda b: by_direction(biases(b)), biases) if node.peek(3) is not None else None

    states = _initial_states(node, layout, directions, 2 if kind == "lstm" else 1)
    mask = _mask(node, x)
    kwargs = dict(
        activation=activation,
        recurrent_activation=recurrent_activation or "sigmoid",
        return_sequences=True,
        return_state=True,
        initial_state=states,
        mask=mask,
    )
    if kind == "gru":
        kwargs["reset_after"] = reset_after
    bias = bias_parts[0] if bias_parts is not None else None
    if directions == 2:
        backward = (kernels[1], recurrents[1], bias_parts[1] if bias_parts is not None else None)
        outs = recurrent(kind, x, kernels[0], recurrents[0], bias, backward=backward, merge_mode=None, **kwargs)
        sequences, finals = outs[:2], outs[2:]
    else:
        backwards = direction == "reverse"
        outs = recurrent(
            kind,
            x,
            kernels[0],
            recurrents[0],
            bias,
            go_backwards=backwards,
            flip_output=backwards,  # ONNX writes the reverse direction's outputs in input time order
            zero_output_for_mask=mask is not None,
            **kwargs,
        )
        sequences, finals = outs[:1], outs[1:]
    # finals: h (and c) per direction, forward first.
    n_states = len(finals) // directions
    y = ops.stack(sequences, axis=2)  # (B, T, D, H)
    results = [y if layout else ops.transpose(y, (1, 2, 0, 3))]
    for k in range(n_states):
        per_direction = [finals[d * n_states + k] for d in range(directions)]
        results.append(ops.stack(per_direction, axis=1 if layout else 0))
    return results[: node.num_outputs]


def _initial_states(node, layout, directions, n_states):
    """Per direction, Keras' initial states (batch, H) (forward first), or None for all zeros."""
    given = [node.peek(5), node.peek(6)][:n_states]
    if all(s is None or (isinstance(s, np.ndarray) and not np.any(s)) for s in given):
        return None  # zeros are Keras' default states
    batch_axis = 0 if layout else 1
    states = []  # the primitive's order: [h, c] of the forward direction, then the backward's
    for d in range(directions):
        per = [None if s is None else ops.take(s, d, axis=1 - batch_axis) for s in given]
        known = next(p for p in per if p is not None)
        states += [ops.zeros_like(known) if p is None else p for p in per]  # an omitted state is zeros
    return states


def _mask(node, x):
    """``sequence_lens`` as Keras' mask ``(batch, time)``: step ``t`` runs when ``t < len``."""
    lengths = node.peek(4)
    if lengths is None:
        return None
    time = x.shape[1]
    if time is None:
        raise node.error(
            f"sequence_lens needs a static sequence length to build the mask; X has shape {tuple(x.shape)}"
        )
    if isinstance(lengths, np.ndarray) and np.all(lengths == time):
        return None  # every row runs every step
    steps = np.arange(time, dtype=np.int64)[None, :]
    return ops.less(steps, ops.expand_dims(ops.cast(lengths, "int64"), 1))
