"""ONNX lowering helpers of the recurrent primitives (``irtool.ops.rnn``): activation attributes,
W/R/B packing from Keras-layout weights, and the Transpose/Squeeze/Gather plumbing that turns the
native node's ``Y``/``Y_h``/``Y_c`` back into Keras-layout outputs."""

from __future__ import annotations

import functools

import numpy as np
from onnx import helper

# The activations ONNX's RNN/GRU/LSTM accept: name -> (ONNX name, alpha, beta).
_ONNX_ACTIVATIONS = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
    "leaky_relu": ("LeakyRelu", 0.2, None),
}


def onnx_activations(ctx, prim, acts) -> dict:
    names, alphas, betas = [], [], []
    for a in acts:
        if not isinstance(a, str) or a not in _ONNX_ACTIVATIONS:
            label = a if isinstance(a, str) else getattr(a, "__name__", repr(a))
            ctx.fail(
                prim,
                f"activation {label!r} is not one ONNX's {prim.onnx_op} supports (use one of "
                f"{', '.join(sorted(_ONNX_ACTIVATIONS))})",
            )
        name, alpha, beta = _ONNX_ACTIVATIONS[a]
        names.append(name)
        if alpha is not None:
            alphas.append(alpha)
        if beta is not None:
            betas.append(beta)
    attrs = {"activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def _gate_order(kind: str, units: int):
    """Column indices taking Keras' gate blocks to ONNX's (LSTM i,f,c,o -> i,o,f,c), or None."""
    if kind != "lstm":
        return None
    blocks = [np.arange(k * units, (k + 1) * units) for k in (0, 3, 1, 2)]
    return np.concatenate(blocks)


def pack_weights(ctx, prim, weights, units, reset_after, dtype):
    """ONNX ``W (D, G*H, F)``, ``R (D, G*H, H)``, ``B (D, 2*G*H)`` (or "" without bias)."""
    order = _gate_order(prim.kind, units)
    width = prim.gates * units
    use_bias = weights[0][2] is not None
    values = [[ctx.constant_value(n) if n is not None else None for n in w] for w in weights]
    if all(v is not None for w, vs in zip(weights, values) for n, v in zip(w, vs) if n is not None):
        ws, rs, bs = [], [], []
        for kernel, recurrent, bias in values:
            if order is not None:
                kernel, recurrent = kernel[:, order], recurrent[:, order]
                bias = bias[order] if bias is not None else None
            ws.append(kernel.T)
            rs.append(recurrent.T)
            if bias is not None:
                bs.append(bias.reshape(-1) if bias.ndim == 2 else np.concatenate([bias, np.zeros_like(bias)]))
        w = ctx.const(np.stack(ws), f"{ctx.scope}/W")
        r = ctx.const(np.stack(rs), f"{ctx.scope}/R")
        b = ctx.const(np.stack(bs), f"{ctx.scope}/B") if use_bias else ""
        return w, r, b
    # Weights computed in the graph: pack them with nodes.
    ws, rs, bs = [], [], []
    for kernel, recurrent, bias in weights:
        if order is not None:
            index = ctx.int64s(order)
            kernel = ctx.node("Gather", [kernel, index], axis=1)[0]
            recurrent = ctx.node("Gather", [recurrent, index], axis=1)[0]
            bias = ctx.node("Gather", [bias, index], axis=0)[0] if bias is not None else None
        ws.append(ctx.unsqueeze(ctx.node("Transpose", [kernel], perm=[1, 0])[0], [0])[0])
        rs.append(ctx.unsqueeze(ctx.node("Transpose", [recurrent], perm=[1, 0])[0], [0])[0])
        if bias is not None:
            if prim.kind == "gru" and reset_after:
                bs.append(ctx.node("Reshape", [bias, ctx.int64s([1, 2 * width])])[0])
            else:
                zeros = ctx.const(np.zeros((width,), dtype))
                bs.append(ctx.unsqueeze(ctx.node("Concat", [bias, zeros], axis=0)[0], [0])[0])

    def stack(parts):
        return parts[0] if len(parts) == 1 else ctx.node("Concat", parts, axis=0)[0]

    return stack(ws), stack(rs), (stack(bs) if use_bias else "")


def _flip_time(ctx, name, axis=0):
    big = np.iinfo(np.int64).max
    return ctx.node("Slice", [name, ctx.int64s([-1]), ctx.int64s([-big]), ctx.int64s([axis]), ctx.int64s([-1])])[0]


def single_outputs(ctx, out, y, finals, state_outs, mask, a):
    """Outputs of a one-direction node: ``Y (T, 1, B, H)``, ``Y_h``/``Y_c (1, B, H)``."""
    return_sequences, go_backwards, flip_output = a.return_sequences, a.go_backwards, a.flip_output
    zero_output = a.zero_output_for_mask
    h_last = ctx.squeeze(finals[0], [0])[0] if (not return_sequences or state_outs or mask is not None) else None
    for k, (name, final) in enumerate(zip(state_outs, finals)):
        if k == 0:
            ctx.node("Identity", [h_last], [name])
        else:
            ctx.squeeze(final, [0], [name])
    if not return_sequences:
        if mask is not None and zero_output:
            # The last processed step's output is zeros where that step is masked.
            step = ctx.node("Gather", [mask, ctx.int64s([0 if go_backwards else -1])], axis=1)[0]
            ctx.node("Where", [step, h_last, ctx.const(np.zeros((), ctx.dtype_of(finals[0])))], [out])
        else:
            ctx.node("Identity", [h_last], [out])
        return
    if go_backwards != flip_output:
        y = _flip_time(ctx, y)
    seq = ctx.node("Transpose", [ctx.squeeze(y, [1])[0]], perm=[1, 0, 2])[0]
    if mask is not None and not zero_output and not go_backwards:
        # Keras repeats the last unmasked output over the padding; ONNX writes zeros there.
        carry = ctx.unsqueeze(h_last, [1])[0]
        mask3 = ctx.unsqueeze(mask, [2])[0]
        if flip_output:
            mask3 = _flip_time(ctx, mask3, axis=1)
        ctx.node("Where", [mask3, seq, carry], [out])
    else:
        ctx.node("Identity", [seq], [out])


def bidirectional_outputs(ctx, outs, y, finals, state_outs, a):
    """Outputs of a bidirectional node: ``Y (T, 2, B, H)``, ``Y_h``/``Y_c (2, B, H)``."""
    return_sequences, merge_mode, units = a.return_sequences, a.merge_mode, a.units
    if state_outs:  # forward h (, c), then backward h (, c)
        n = len(finals)
        for d in range(2):
            for k, final in enumerate(finals):
                ctx.node("Gather", [final, ctx.const(np.asarray(d, np.int64))], [state_outs[n * d + k]], axis=0)
    if return_sequences:
        source, direction_axis = y, 1
    else:
        source, direction_axis = finals[0], 0
    if merge_mode is None:
        for d, name in enumerate(outs):
            part = ctx.node("Gather", [source, ctx.const(np.asarray(d, np.int64))], axis=direction_axis)[0]
            if return_sequences:
                ctx.node("Transpose", [part], [name], perm=[1, 0, 2])
            else:
                ctx.node("Identity", [part], [name])
    elif merge_mode == "concat":
        if return_sequences:
            both = ctx.node("Transpose", [source], perm=[2, 0, 1, 3])[0]  # (B, T, 2, H)
            ctx.node("Reshape", [both, ctx.int64s([0, 0, 2 * units])], outs)
        else:
            both = ctx.node("Transpose", [source], perm=[1, 0, 2])[0]  # (B, 2, H)
            ctx.node("Reshape", [both, ctx.int64s([0, 2 * units])], outs)
    else:
        op = {"sum": "ReduceSum", "mul": "ReduceProd", "ave": "ReduceMean"}[merge_mode]
        if return_sequences:
            merged = ctx.reduce(op, source, [direction_axis], keepdims=False)[0]
            ctx.node("Transpose", [merged], outs, perm=[1, 0, 2])
        else:
            ctx.reduce(op, source, [direction_axis], keepdims=False, outputs=outs)


# -- any mask: a run-time choice between the native node and a Scan ------------------------------
_BIG = np.iinfo(np.int64).max


def _slice(ctx, name, start, end, axis):
    return ctx.node("Slice", [name, ctx.int64s([start]), ctx.int64s([end]), ctx.int64s([axis])])[0]


def prefix_condition(ctx, mask, needs_first_step):
    """A bool scalar: every row of ``mask (B, T)`` is a prefix (``1..1 0..0``), i.e. no step is
    unmasked after a masked one; with ``needs_first_step`` every row's first step is unmasked too
    (an all-masked row keeps given initial states in Keras, ONNX Runtime zeroes them)."""
    rises = ctx.node("And", [_slice(ctx, mask, 1, _BIG, 1), ctx.node("Not", [_slice(ctx, mask, 0, -1, 1)])[0]])[0]
    bad = ctx.node("ReduceSum", [ctx.node("Cast", [rises], to=ctx.onnx_dtype("int64"))[0]], keepdims=0)[0]
    if needs_first_step:
        empty = ctx.node("Not", [_slice(ctx, mask, 0, 1, 1)])[0]
        bad_first = ctx.node("ReduceSum", [ctx.node("Cast", [empty], to=ctx.onnx_dtype("int64"))[0]], keepdims=0)[0]
        bad = ctx.node("Add", [bad, bad_first])[0]
    return ctx.node("Equal", [bad, ctx.const(np.asarray(0, np.int64))])[0]


def _value_info(ctx, name, dtype, shape):
    return helper.make_tensor_value_info(name, ctx.onnx_dtype(dtype), None if shape is None else list(shape))


def subgraph(ctx, name, emit, inputs=()):
    """The nodes ``emit()`` adds, as a ``GraphProto`` named ``name``: ``emit`` returns its output
    names (each with a known dtype in ``ctx``); ``inputs`` are ``(name, dtype, shape)``. Names
    the nodes read from outside are outer-scope references, which ONNX allows in subgraphs."""
    saved, ctx.nodes = ctx.nodes, []
    try:
        out_names = emit()
    finally:
        nodes, ctx.nodes = ctx.nodes, saved
    graph_inputs = [_value_info(ctx, n, dtype, shape) for n, dtype, shape in inputs]
    graph_outputs = [_value_info(ctx, n, ctx.dtype_of(n), ctx.shapes.get(n)) for n in out_names]
    return helper.make_graph(nodes, ctx.unique(name), graph_inputs, graph_outputs)


def if_node(ctx, cond, then_emit, else_emit, outs):
    """``outs = If(cond, then, else)``; each ``*_emit(names)`` writes the branch's outputs ``names``."""

    def branch(tag, emit):
        names = [ctx.unique(f"{o}__{tag}") for o in outs]
        for n, o in zip(names, outs):
            ctx.dtypes[n], ctx.shapes[n] = ctx.dtypes[o], ctx.shapes.get(o)

        def run():
            emit(names)
            return names

        return subgraph(ctx, f"{ctx.scope}/{tag}", run)

    then_graph, else_graph = branch("native", then_emit), branch("scan", else_emit)
    ctx.node("If", [cond], outs, then_branch=then_graph, else_branch=else_graph)


def _activation(ctx, name, x):
    onnx_name, alpha, beta = _ONNX_ACTIVATIONS[name]
    if onnx_name == "Affine":
        return x
    attrs = {}
    if alpha is not None:
        attrs["alpha"] = alpha
    if beta is not None:
        attrs["beta"] = beta
    return ctx.node(onnx_name, [x], **attrs)[0]


def _part(ctx, name, index, axis):
    """``name``'s slice ``index`` along ``axis`` (an int: Gather; a slice: Slice), folded for constants."""
    value = ctx.constant_value(name)
    if value is not None:
        return ctx.const(
            np.ascontiguousarray(
                np.take(value, index, axis) if isinstance(index, int) else value[(slice(None),) * axis + (index,)]
            )
        )
    if isinstance(index, int):
        return ctx.node("Gather", [name, ctx.const(np.asarray(index, np.int64))], axis=axis)[0]
    return _slice(ctx, name, index.start or 0, _BIG if index.stop is None else index.stop, axis)


def _step(ctx, prim, a, recurrent, rec_bias, states, p, dtype):
    """One Keras recurrence step on ``p = x_t @ kernel + bias`` (B, G*H): the new states."""
    units, kind = a.units, prim.kind
    act = functools.partial(_activation, ctx, a.activation)
    rec_act = functools.partial(_activation, ctx, a.recurrent_activation)

    def split(name, n):
        return ctx.node("Split", [name, ctx.int64s([units] * n)], n, axis=1)

    if kind == "simple_rnn":
        return [act(ctx.node("Add", [p, ctx.node("MatMul", [states[0], recurrent])[0]])[0])]
    if kind == "lstm":
        h, c = states
        z = ctx.node("Add", [p, ctx.node("MatMul", [h, recurrent])[0]])[0]
        i, f, g, o = split(z, 4)
        i, f, g, o = rec_act(i), rec_act(f), act(g), rec_act(o)
        c = ctx.node("Add", [ctx.node("Mul", [f, c])[0], ctx.node("Mul", [i, g])[0]])[0]
        return [ctx.node("Mul", [o, act(c)])[0], c]
    h = states[0]
    xz, xr, xh = split(p, 3)
    if a.reset_after:
        inner = ctx.node("MatMul", [h, recurrent])[0]
        if rec_bias is not None:
            inner = ctx.node("Add", [inner, rec_bias])[0]
        iz, ir, ih = split(inner, 3)
        z = rec_act(ctx.node("Add", [xz, iz])[0])
        r = rec_act(ctx.node("Add", [xr, ir])[0])
        hidden = ctx.node("Mul", [r, ih])[0]
    else:
        rec_zr, rec_h = recurrent
        iz, ir = split(ctx.node("MatMul", [h, rec_zr])[0], 2)
        z = rec_act(ctx.node("Add", [xz, iz])[0])
        r = rec_act(ctx.node("Add", [xr, ir])[0])
        hidden = ctx.node("MatMul", [ctx.node("Mul", [r, h])[0], rec_h])[0]
    hh = act(ctx.node("Add", [xh, hidden])[0])
    one_minus_z = ctx.node("Sub", [ctx.const(np.ones((), dtype)), z])[0]
    return [ctx.node("Add", [ctx.node("Mul", [z, h])[0], ctx.node("Mul", [one_minus_z, hh])[0]])[0]]


def _scan_direction(ctx, prim, a, x_tm, mask_tm, zeros, weights, states, backwards, flip, zero_output, dtype):
    """One direction as a ``Scan`` over time: ``(final states, last output, outputs (T, B, H) | None)``,
    the outputs in processing order, or in input order with ``flip``. Masked steps keep the
    states and repeat the previous output (zeros with ``zero_output``), as Keras does."""
    units, n_states, width = a.units, prim.n_states, prim.gates * a.units
    kernel, recurrent, bias = weights
    in_bias = rec_bias = None
    if bias is not None:
        if prim.kind == "gru" and a.reset_after:
            in_bias, rec_bias = _part(ctx, bias, 0, 0), _part(ctx, bias, 1, 0)
        else:
            in_bias = bias
    if prim.kind == "gru" and not a.reset_after:
        recurrent = (_part(ctx, recurrent, slice(0, 2 * units), 1), _part(ctx, recurrent, slice(2 * units, None), 1))
    projected = ctx.node("MatMul", [x_tm, kernel])[0]  # (T, B, G*H), outside the loop
    if in_bias is not None:
        projected = ctx.node("Add", [projected, in_bias])[0]
    init = list(states) if states is not None else [zeros] * n_states
    state_in = [ctx.unique(f"{ctx.scope}/scan/state{k}") for k in range(n_states)]
    prev_in, p_in, m_in = (ctx.unique(f"{ctx.scope}/scan/{n}") for n in ("prev_output", "x_t", "mask_t"))
    for n in (*state_in, prev_in, p_in):
        ctx.dtypes[n] = dtype

    def body():
        new = _step(ctx, prim, a, recurrent, rec_bias, state_in, p_in, dtype)
        keep = ctx.const(np.zeros((), dtype)) if zero_output else prev_in
        out = ctx.node("Where", [m_in, new[0], keep])[0]
        kept = [ctx.node("Where", [m_in, n, s])[0] for n, s in zip(new, state_in)]
        names = [*kept, out] + ([ctx.node("Identity", [out])[0]] if a.return_sequences else [])
        for n in names:
            ctx.dtypes[n], ctx.shapes[n] = dtype, (None, units)
        return names

    inputs = [(n, dtype, (None, units)) for n in (*state_in, prev_in)]
    inputs += [(p_in, dtype, (None, width)), (m_in, "bool", (None, 1))]
    graph = subgraph(ctx, f"{ctx.scope}/scan_body", body, inputs)
    n_out = n_states + 1 + int(a.return_sequences)
    attrs = dict(body=graph, num_scan_inputs=2)
    if backwards:
        attrs["scan_input_directions"] = [1, 1]
    if a.return_sequences and flip:
        attrs["scan_output_directions"] = [1]
    results = ctx.node("Scan", [*init, zeros, projected, mask_tm], n_out, **attrs)
    for n in results:
        ctx.dtypes[n] = dtype
    return results[:n_states], results[n_states], (results[-1] if a.return_sequences else None)


def scan_outputs(ctx, prim, a, x, weights, states, mask, outs, dtype):
    """The layer's outputs ``outs`` from one ``Scan`` per direction (exact for any mask)."""
    x_tm = ctx.node("Transpose", [x], perm=[1, 0, 2])[0]
    mask_tm = ctx.unsqueeze(ctx.node("Transpose", [mask], perm=[1, 0])[0], [2])[0]  # (T, B, 1)
    batch = _slice(ctx, ctx.node("Shape", [x])[0], 0, 1, 0)
    shape = ctx.node("Concat", [batch, ctx.int64s([a.units])], axis=0)[0]
    zero = helper.make_tensor("zero", ctx.onnx_dtype(dtype), [1], [0])
    zeros = ctx.node("ConstantOfShape", [shape], value=zero)[0]
    ctx.dtypes[zeros] = dtype
    results = []
    for d in range(prim.directions):
        backwards = d == 1 if prim.directions == 2 else a.go_backwards
        flip = d == 1 if prim.directions == 2 else a.flip_output
        results.append(
            _scan_direction(
                ctx,
                prim,
                a,
                x_tm,
                mask_tm,
                zeros,
                weights[d],
                states[d],
                backwards,
                flip,
                a.zero_output_for_mask,
                dtype,
            )
        )
    n_out = 2 if prim.split else 1
    state_outs = outs[n_out:]
    finals = [s for f, _, _ in results for s in f]
    for name, final in zip(state_outs, finals):
        ctx.node("Identity", [final], [name])
    if a.return_sequences:
        parts = [ctx.node("Transpose", [seq], perm=[1, 0, 2])[0] for _, _, seq in results]
    else:
        parts = [last for _, last, _ in results]
    if prim.directions == 1 or prim.split:
        for part, name in zip(parts, outs[:n_out]):
            ctx.node("Identity", [part], [name])
        return
    first, second = parts
    if a.merge_mode == "concat":
        ctx.node("Concat", [first, second], [outs[0]], axis=-1)
    elif a.merge_mode == "ave":
        total = ctx.node("Add", [first, second])[0]
        ctx.node("Div", [total, ctx.const(np.asarray(2, dtype))], [outs[0]])
    else:
        ctx.node({"sum": "Add", "mul": "Mul"}[a.merge_mode], [first, second], [outs[0]])
