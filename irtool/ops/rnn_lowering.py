"""ONNX lowering helpers of the recurrent primitives (``irtool.ops.rnn``): activation attributes,
W/R/B packing from Keras-layout weights, and the Transpose/Squeeze/Gather plumbing that turns the
native node's ``Y``/``Y_h``/``Y_c`` back into Keras-layout outputs."""

from __future__ import annotations

import numpy as np

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
