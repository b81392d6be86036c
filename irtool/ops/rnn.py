"""Recurrent primitives: one fused op per SimpleRNN, LSTM or GRU layer (or Bidirectional pair).

Each primitive takes the sequence ``x`` in Keras layout ``(batch, time, features)``, the
Keras-layout weights of one or two directions (``kernel (F, G*H)``, ``recurrent_kernel
(H, G*H)``, ``bias``; Keras gate blocks: LSTM ``i, f, c, o``, GRU ``z, r, h``), optional initial
states and an optional boolean mask ``(batch, time)``. Its outputs are the layer's output (or
the two direction outputs of a Bidirectional with ``merge_mode=None``) followed, when asked
for, by the final states (``h`` / ``h, c`` per direction, forward first).

* **NumPy** runs Keras' exact recurrence (``keras.src.backend.*.rnn``) vectorized over the
  batch with a loop over time. A masked step keeps the previous states; its output is the
  previous step's output (zeros before the first unmasked step), or zeros with
  ``zero_output_for_mask`` (which Keras' Bidirectional forces when returning sequences). With
  ``go_backwards`` the steps run from the last to the first and the returned sequence is in
  processing order, as in Keras (``flip_output`` reverses it, for Bidirectional).
* **ONNX** without a mask is one native ``RNN`` / ``GRU`` / ``LSTM`` node
  (``direction="bidirectional"`` for a pair) with ``W``/``R``/``B`` packed from the weights at
  export (LSTM gates reordered to ONNX's ``i, o, f, c``; GRU ``reset_after=True`` is
  ``linear_before_reset=1``). ``x`` is transposed to ``(time, batch, features)`` (``layout=0``:
  ONNX Runtime's CPU kernels reject ``layout=1``), so the time axis stays dynamic. With a mask
  the export is exact for any mask pattern, choosing at run time with an ``If``: when every
  row's mask is a prefix (``[1, 1, 1, 0, 0]``, right padding, what ``Embedding(mask_zero=True)``
  gives on zero-padded sequences; with initial states, also no all-masked row, whose states
  ONNX Runtime would zero where Keras keeps them) the native node runs with ``sequence_lens =
  sum(mask, time)``; otherwise (left padding, holes) one ``Scan`` per direction runs Keras'
  step on ``x @ kernel + bias`` (computed for all steps before the loop) with ``Where`` keeping
  the states and the previous output (or zeros) on masked steps, exactly as NumPy does.
  Activations ONNX accepts: tanh, sigmoid, relu, linear, hard_sigmoid, softsign, softplus, elu,
  leaky_relu; any other (a name or a callable written in ops) runs in NumPy and fails to lower
  with a clear error. The lowering helpers are in ``irtool.ops.rnn_lowering``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

from irtool import random
from irtool.ir.dtypes import is_float
from irtool.ir.spec import TensorSpec
from irtool.ops import elementwise as ew
from irtool.ops.core import Primitive, SymbolicTensor, apply, scope, spec_of, value_of
from irtool.ops.operation import top_level_op
from irtool.ops.rnn_lowering import (
    bidirectional_outputs,
    if_node,
    onnx_activations,
    pack_weights,
    prefix_condition,
    scan_outputs,
    single_outputs,
)

# kind -> (gate blocks, number of states, ONNX op)
KINDS = {"simple_rnn": (1, 1, "RNN"), "gru": (3, 1, "GRU"), "lstm": (4, 2, "LSTM")}
MERGE_MODES = ("concat", "sum", "mul", "ave", None)

# NumPy forms of the named activations an RNN accepts by name (others are passed as callables).
_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": ew._sigmoid,
    "relu": ew.RELU.fn,
    "linear": lambda x: x,
    "hard_sigmoid": ew.HARD_SIGMOID.fn,
    "softsign": ew.SOFTSIGN.fn,
    "softplus": ew._softplus,
    "elu": lambda x: ew._elu(x, 1.0),
    "leaky_relu": lambda x: ew._leaky_relu(x, 0.2),
    "relu6": ew.RELU6.fn,
    "selu": ew.SELU.fn,
    "exponential": np.exp,
    "gelu": lambda x: ew._gelu(x, False),
}


def activation_attr(activation):
    """The attr for an activation: its name when it is one we know, else the callable itself."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        if activation not in _NUMPY_ACTIVATIONS:
            raise ValueError(f"Unknown RNN activation {activation!r}: pass a callable written in `irtool.ops`.")
        return activation
    name = getattr(activation, "__name__", None)
    if name in _NUMPY_ACTIVATIONS and getattr(activation, "__module__", "").startswith("irtool."):
        return name
    if not callable(activation):
        raise ValueError(f"Could not interpret RNN activation {activation!r}.")
    return activation


def _numpy_activation(activation):
    return _NUMPY_ACTIVATIONS[activation] if isinstance(activation, str) else activation


# d activation / dx from (x, y) for the named activations (y = activation(x)).
_ACTIVATION_GRADS = {
    "tanh": lambda x, y: 1 - y * y,
    "sigmoid": lambda x, y: y * (1 - y),
    "linear": None,
    "exponential": lambda x, y: y,
    "elu": lambda x, y: ew._UNARY_GRADS["elu"](x, y, 1.0),
    "leaky_relu": lambda x, y: ew._UNARY_GRADS["leaky_relu"](x, y, 0.2),
    "gelu": lambda x, y: ew._UNARY_GRADS["gelu"](x, y, False),
}


def _activation_vjp(activation):
    """``f(x, y, g) -> g * activation'(x)`` (in ``g``'s dtype), ``y = activation(x)``."""
    if activation is None or activation == "linear":
        return lambda x, y, g: g
    if isinstance(activation, str):
        grad = _ACTIVATION_GRADS.get(activation) or ew._UNARY_GRADS[activation]
        return lambda x, y, g: (g * grad(x, y)).astype(g.dtype, copy=False)
    return _traced_vjp(activation)


_TRACE_SCOPE = ("rnn_activation_gradient",)


@functools.lru_cache(maxsize=64)
def _traced_vjp(fn):
    """The vjp of a callable written in ``irtool.ops``: traced once per input shape into its
    primitive records, then run forward and backward with their ``forward`` and ``vjp`` rules."""
    traces = {}

    def trace(shape, dtype):
        x = SymbolicTensor(shape, dtype)
        with scope(_TRACE_SCOPE):  # inside a scope: top-level ops are not recorded as layers
            y = fn(x)
        order, seen, stack = [], set(), [y.producer] if isinstance(y, SymbolicTensor) and y.producer else []
        while stack:  # depth-first post-order over the producers
            node = stack[-1]
            pending = [
                t.producer
                for t in node.inputs
                if isinstance(t, SymbolicTensor) and t.producer is not None and id(t.producer) not in seen
            ]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
        return x, y, order

    def vjp(x_value, y_value, g):
        key = (x_value.shape, x_value.dtype.str)
        if key not in traces:
            traces[key] = trace(x_value.shape, x_value.dtype.name)
        x, y, order = traces[key]
        if not isinstance(y, SymbolicTensor):
            return np.zeros_like(x_value)
        values = {id(x): x_value}

        def value(t):
            return values[id(t)] if isinstance(t, SymbolicTensor) else value_of(t)

        for node in order:
            result = node.prim.forward(*[value(t) for t in node.inputs], **node.attrs)
            for out, r in zip(node.outputs, [result] if node.prim.num_outputs == 1 else result):
                values[id(out)] = r
        grads = {id(y): g}
        for node in reversed(order):
            cots = [grads.get(id(o)) for o in node.outputs]
            if all(c is None for c in cots):
                continue
            cots = [np.zeros_like(values[id(o)]) if c is None else c for c, o in zip(cots, node.outputs)]
            ins = [value(t) for t in node.inputs]
            outs = [values[id(o)] for o in node.outputs]
            for t, d in zip(node.inputs, node.prim.vjp(cots, ins, outs, **node.attrs)):
                if d is not None and isinstance(t, SymbolicTensor):
                    grads[id(t)] = d if id(t) not in grads else grads[id(t)] + d
        d = grads.get(id(x))
        return np.zeros_like(x_value) if d is None else d.astype(x_value.dtype, copy=False)

    return vjp


_DEFAULTS = dict(
    units=None,
    activation="tanh",
    recurrent_activation="sigmoid",
    use_bias=True,
    reset_after=False,
    has_initial_state=False,
    has_mask=False,
    return_sequences=False,
    go_backwards=False,
    flip_output=False,
    zero_output_for_mask=False,
    merge_mode=None,
    dropout=0.0,
    recurrent_dropout=0.0,
)


class Recurrent(Primitive):
    """A fused recurrent layer. Inputs: ``x``, then per direction ``kernel, recurrent_kernel[,
    bias]``, then per direction its initial states (if ``has_initial_state``), then the mask (if
    ``has_mask``). Attributes: ``_DEFAULTS``. See the module docstring for the semantics."""

    def __init__(self, kind: str, bidirectional: bool, split: bool, with_states: bool):
        self.kind = self.name = kind
        self.gates, self.n_states, self.onnx_op = KINDS[kind]
        self.directions = 2 if bidirectional else 1
        self.split = split
        self.with_states = with_states
        self.num_outputs = (2 if split else 1) + (self.n_states * self.directions if with_states else 0)

    def _unpack(self, items, a):
        """``(x, [[kernel, recurrent, bias|None]] per direction, [states|None] per direction, mask|None)``."""
        per = 3 if a.use_bias else 2
        weights = [list(items[1 + per * d : 1 + per * (d + 1)]) + [None] * (3 - per) for d in range(self.directions)]
        i = 1 + per * self.directions
        states = [None] * self.directions
        if a.has_initial_state:
            for d in range(self.directions):
                states[d], i = list(items[i : i + self.n_states]), i + self.n_states
        if len(items) != i + int(a.has_mask):
            raise ValueError(f"`{self.name}` got {len(items)} inputs, expected {i + int(a.has_mask)}.")
        return items[0], weights, states, (items[i] if a.has_mask else None)

    # -- shapes ----------------------------------------------------------------------------------
    def infer(self, specs, **attrs):
        a = _config(attrs)
        x, weights, states, mask = self._unpack(specs, a)
        what, units = f"`{self.kind}`", a.units
        if len(x.shape) != 3:
            raise ValueError(f"{what} expects inputs of rank 3 (batch, timesteps, features). Received: shape={x.shape}")
        if not is_float(x.dtype):
            raise ValueError(f"{what} needs floating-point inputs. Received: dtype={x.dtype}")
        batch, time, features = x.shape
        width = self.gates * units
        bias_shape = (2, width) if self.kind == "gru" and a.reset_after else (width,)
        for kernel, recurrent, bias in weights:
            expected = [(kernel, (features, width), "kernel"), (recurrent, (units, width), "recurrent_kernel")]
            expected += [(bias, bias_shape, "bias")] if bias is not None else []
            for spec, shape, name in expected:
                if len(spec.shape) != len(shape) or any(d is not None and d != e for d, e in zip(spec.shape, shape)):
                    raise ValueError(
                        f"{what} with {units} units on inputs of shape {x.shape} expects `{name}` of shape "
                        f"{shape}. Received: shape={spec.shape}"
                    )
                if spec.dtype != x.dtype:
                    raise ValueError(f"{what}: `{name}` has dtype {spec.dtype}, the inputs {x.dtype}.")
        for s in (s for direction in states for s in direction or ()):
            if len(s.shape) != 2 or s.shape[1] not in (None, units) or s.dtype != x.dtype:
                raise ValueError(
                    f"{what} expects each initial state of shape (batch, {units}) and dtype {x.dtype}. "
                    f"Received: shape={s.shape}, dtype={s.dtype}"
                )
            batch = batch if batch is not None else s.shape[0]
        if mask is not None and (len(mask.shape) != 2 or mask.dtype != "bool"):
            raise ValueError(
                f"{what} expects a boolean mask of shape (batch, timesteps). Received: shape={mask.shape}, "
                f"dtype={mask.dtype}"
            )
        out_units = units * 2 if self.directions == 2 and a.merge_mode == "concat" else units
        out = TensorSpec((batch, time, out_units) if a.return_sequences else (batch, out_units), x.dtype)
        states_out = [TensorSpec((batch, units), x.dtype)] * (self.n_states * self.directions)
        return [out] * (2 if self.split else 1) + (states_out if self.with_states else [])

    # -- NumPy -----------------------------------------------------------------------------------
    def _forward(self, arrays, attrs, with_tape: bool, rng=None):
        """``(outputs, aux)``; ``aux = (each direction's output, each direction's tape|None)``.

        With ``rng`` (training), each direction draws Keras' dropout masks for the call (see
        ``_dropout_masks``); its tape then starts with them."""
        a = _config(attrs)
        x, weights, states, mask = self._unpack(arrays, a)
        results, tapes = [], []
        for d in range(self.directions):
            backwards = d == 1 if self.directions == 2 else a.go_backwards
            tape = [] if with_tape else None
            masks = _dropout_masks(self.kind, x, a, rng) if rng is not None else (None, None)
            seq, last, final = _run(self.kind, x, *weights[d], states[d], mask, backwards, a, tape, masks)
            flip = d == 1 if self.directions == 2 else a.flip_output
            out = (seq[:, ::-1] if flip else seq) if a.return_sequences else last
            results.append((np.ascontiguousarray(out), final))
            tapes.append(tape)
        if self.directions == 1 or self.split:
            outputs = [out for out, _ in results]
        else:
            outputs = [_merge(results[0][0], results[1][0], a.merge_mode)]
        if self.with_states:
            outputs += [s for _, final in results for s in final]
        return (outputs[0] if self.num_outputs == 1 else tuple(outputs)), ([out for out, _ in results], tapes)

    def forward(self, *arrays, **attrs):
        return self._forward(arrays, attrs, False)[0]

    # -- gradients (backpropagation through time) --------------------------------------------------
    returns_aux = True

    def inference_attrs(self, attrs):
        return {k: v for k, v in attrs.items() if k not in ("dropout", "recurrent_dropout")}

    def training_kernel(self, attrs, rng):
        forward = self._forward
        if attrs.get("dropout", 0.0) > 0 or attrs.get("recurrent_dropout", 0.0) > 0:
            return lambda *arrays: forward(arrays, attrs, True, rng)
        return lambda *arrays: forward(arrays, attrs, True)

    def vjp(self, cotangents, inputs, outputs, **attrs):
        return self.training_vjp(cotangents, inputs, outputs, self._forward(inputs, attrs, True)[1], **attrs)

    def training_vjp(self, cotangents, inputs, outputs, aux, **attrs):
        a = _config(attrs)
        x, weights, _, mask = self._unpack(inputs, a)
        direction_outputs, tapes = aux
        n_out = 2 if self.split else 1
        d_outs = _merge_vjp(cotangents[:n_out], direction_outputs, a.merge_mode, self.directions, self.split)
        n_states = self.n_states
        d_x, weight_grads, state_grads = None, [], []
        for d in range(self.directions):
            backwards = d == 1 if self.directions == 2 else a.go_backwards
            flip = d == 1 if self.directions == 2 else a.flip_output
            g = d_outs[d]
            d_seq = d_last = None
            if g is not None:
                if a.return_sequences:
                    d_seq = g[:, ::-1] if flip else g
                else:
                    d_last = g
            if self.with_states:
                d_final = list(cotangents[n_out + d * n_states : n_out + (d + 1) * n_states])
            else:
                d_final = [None] * n_states
            dx, dk, dr, db, ds = _backprop(
                self.kind, x, *weights[d], mask, backwards, a, tapes[d], d_seq, d_last, d_final
            )
            d_x = dx if d_x is None else d_x + dx
            weight_grads += [dk, dr] + ([db] if a.use_bias else [])
            state_grads += ds
        return [d_x] + weight_grads + (state_grads if a.has_initial_state else []) + [None] * int(a.has_mask)

    # -- ONNX ------------------------------------------------------------------------------------
    def to_onnx(self, ctx, ins, outs, **attrs):
        a = _config(attrs)
        x, weights, states, mask = self._unpack(ins, a)
        dtype = ctx.dtype_of(x)
        acts = {"simple_rnn": [a.activation], "gru": [a.recurrent_activation, a.activation]}.get(
            self.kind, [a.recurrent_activation, a.activation, a.activation]
        )
        node_attrs = onnx_activations(ctx, self, acts * self.directions)
        if mask is None:
            self._native(ctx, a, node_attrs, x, weights, states, None, outs, dtype)
            return
        # The native node's sequence_lens is exact when every row's mask is a prefix; any other
        # mask (left padding, holes) runs the Scan. ONNX Runtime picks the branch at run time.
        cond = prefix_condition(ctx, mask, a.has_initial_state)
        if_node(
            ctx,
            cond,
            lambda names: self._native(ctx, a, node_attrs, x, weights, states, mask, names, dtype),
            lambda names: scan_outputs(ctx, self, a, x, weights, states, mask, names, dtype),
            outs,
        )

    def _native(self, ctx, a, node_attrs, x, weights, states, mask, outs, dtype):
        """One native RNN/GRU/LSTM node: exact without a mask or with a right-padded one."""
        node_attrs = dict(node_attrs, hidden_size=a.units)
        if self.kind == "gru":
            node_attrs["linear_before_reset"] = int(a.reset_after)
        node_attrs["direction"] = (
            "bidirectional" if self.directions == 2 else ("reverse" if a.go_backwards else "forward")
        )
        w, r, b = pack_weights(ctx, self, weights, a.units, a.reset_after, dtype)
        seq_lens = ""
        if mask is not None:
            as_int = ctx.node("Cast", [mask], to=ctx.onnx_dtype("int32"))[0]
            seq_lens = ctx.reduce("ReduceSum", as_int, [1], keepdims=False)[0]
        node_ins = [ctx.node("Transpose", [x], perm=[1, 0, 2])[0], w, r, b, seq_lens]
        if states[0] is not None:
            for k in range(self.n_states):
                parts = [ctx.unsqueeze(states[d][k], [0])[0] for d in range(self.directions)]
                node_ins.append(parts[0] if len(parts) == 1 else ctx.node("Concat", parts, axis=0)[0])
        while node_ins[-1] == "":
            node_ins.pop()
        y = ctx.unique(f"{ctx.scope}/Y") if a.return_sequences else ""
        finals = [ctx.unique(f"{ctx.scope}/Y_{s}") for s in ("h", "c")[: self.n_states]]
        ctx.node(self.onnx_op, node_ins, [y, *finals], **node_attrs)
        for name in [y, *finals]:
            ctx.dtypes[name] = dtype
        n_out = 2 if self.split else 1
        if self.directions == 1:
            single_outputs(ctx, outs[0], y, finals, outs[n_out:], mask, a)
        else:
            bidirectional_outputs(ctx, outs[:n_out], y, finals, outs[n_out:], a)


def _config(attrs):
    unknown = set(attrs) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown recurrent attributes: {sorted(unknown)}")
    return SimpleNamespace(**{**_DEFAULTS, **attrs})


@functools.cache
def recurrent_primitive(kind: str, bidirectional: bool = False, split: bool = False, with_states: bool = False):
    """The (shared) primitive for one configuration of outputs."""
    return Recurrent(kind, bidirectional, split, with_states)


# -- the NumPy recurrence ------------------------------------------------------------------------
def _dropout_masks(kind, x, a, rng):
    """Keras 3's dropout masks for one direction of one call: ``(input_masks, recurrent_masks)``.

    Each is None (rate 0) or a stack of ``(batch, size)`` masks holding 0 or ``1 / (1 - rate)``,
    drawn once per call and shared by every time step. Like Keras, a layer with
    ``recurrent_dropout`` uses one mask per gate for the inputs and for the state (its
    "implementation 1"); with only ``dropout`` all gates share one input mask.
    """
    gates = KINDS[kind][0]
    per_gate = gates if a.recurrent_dropout > 0 else 1

    def draw(count, size, rate):
        if rate <= 0:
            return None
        keep = rng.random((count, x.shape[0], size)) >= rate
        return (keep / np.asarray(1 - rate, x.dtype)).astype(x.dtype)

    return draw(per_gate, x.shape[2], a.dropout), draw(gates, a.units, a.recurrent_dropout)


def _gate_matmul(h, w, masks):
    """``h @ w`` where gate block ``k`` of ``w``'s columns reads ``h * masks[k]`` (one mask: all gates).

    ``masks`` broadcast against ``h``; None means no dropout."""
    if masks is None:
        return h @ w
    if len(masks) == 1:
        return (h * masks[0]) @ w
    size = w.shape[1] // len(masks)
    return np.concatenate([(h * m) @ w[:, k * size : (k + 1) * size] for k, m in enumerate(masks)], axis=-1)


def _gate_matmul_dh(g, w, masks):
    """The gradient of ``_gate_matmul(h, w, masks)`` with respect to ``h``, given ``g``."""
    if masks is None:
        return g @ w.T
    if len(masks) == 1:
        return (g @ w.T) * masks[0]
    size = w.shape[1] // len(masks)
    dh = None
    for k, m in enumerate(masks):
        part = (g[..., k * size : (k + 1) * size] @ w[:, k * size : (k + 1) * size].T) * m
        dh = part if dh is None else dh + part
    return dh


def _gate_matmul_dw(h, g, masks):
    """The gradient of ``_gate_matmul(h, w, masks)`` with respect to ``w``, summed over the leading
    dimensions of ``h (..., n)`` and ``g (..., width)`` (same leading shape)."""
    n, width = h.shape[-1], g.shape[-1]
    if masks is None or len(masks) == 1:
        hm = h if masks is None else h * masks[0]
        return hm.reshape(-1, n).T @ g.reshape(-1, width)
    size = width // len(masks)
    flat = g.reshape(-1, width)
    return np.concatenate(
        [(h * m).reshape(-1, n).T @ flat[:, k * size : (k + 1) * size] for k, m in enumerate(masks)], axis=1
    )


def _run(kind, x, kernel, recurrent, bias, states, mask, backwards, a, tape=None, masks=(None, None)):
    """One direction: returns (outputs in processing order (B, T, H), last output, final states).

    With a ``tape`` (a list), each step appends what the backward pass (``_backprop``) reads; the
    dropout ``masks`` (see ``_dropout_masks``) are appended first.
    """
    units, reset_after, zero_output = a.units, a.reset_after, a.zero_output_for_mask
    act, rec_act = _numpy_activation(a.activation), _numpy_activation(a.recurrent_activation)
    batch, time = x.shape[0], x.shape[1]
    dtype = x.dtype
    n_states = KINDS[kind][1]
    if states is None:
        states = [np.zeros((batch, units), dtype) for _ in range(n_states)]
    states = [np.asarray(s, dtype) for s in states]
    input_bias = recurrent_bias = None
    if bias is not None:
        input_bias, recurrent_bias = (bias[0], bias[1]) if kind == "gru" and reset_after else (bias, None)
    in_masks, rec_masks = masks
    if tape is not None:
        tape.append(masks)
    projected = _gate_matmul(x, kernel, None if in_masks is None else in_masks[:, :, None, :])
    if input_bias is not None:
        projected = projected + input_bias
    one = np.asarray(1, dtype)
    prev_out = np.zeros((batch, units), dtype)
    outputs = []
    for t in range(time - 1, -1, -1) if backwards else range(time):
        xt = projected[:, t]
        if kind == "simple_rnn":
            pre = xt + _gate_matmul(states[0], recurrent, rec_masks)
            new = [act(pre)]
            record = (pre,)
        elif kind == "lstm":
            h, c = states
            z = xt + _gate_matmul(h, recurrent, rec_masks)
            i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
            i_, f_, g_, o_ = rec_act(i), rec_act(f), act(g), rec_act(o)
            c = f_ * c + i_ * g_
            tc = act(c)
            new = [o_ * tc, c]
            record = (z, i_, f_, g_, o_, c, tc)
        else:
            h = states[0]
            xz, xr, xh = (xt[:, k * units : (k + 1) * units] for k in range(3))
            if reset_after:
                inner = _gate_matmul(h, recurrent, rec_masks)
                if recurrent_bias is not None:
                    inner = inner + recurrent_bias
                pz, pr = xz + inner[:, :units], xr + inner[:, units : 2 * units]
                z, r = rec_act(pz), rec_act(pr)
                hidden = inner[:, 2 * units :]
                ph = xh + r * hidden
            else:
                inner = _gate_matmul(h, recurrent[:, : 2 * units], None if rec_masks is None else rec_masks[:2])
                pz, pr = xz + inner[:, :units], xr + inner[:, units:]
                z, r = rec_act(pz), rec_act(pr)
                hidden = r * h if rec_masks is None else r * (h * rec_masks[2])
                ph = xh + hidden @ recurrent[:, 2 * units :]
            hh = act(ph)
            new = [z * h + (one - z) * hh]
            record = (pz, pr, z, r, hidden, ph, hh)
        if tape is not None:
            tape.append((states, new, record))
        out = new[0]
        if mask is not None:
            m = mask[:, t, None].astype(bool)
            out = np.where(m, out, np.zeros_like(out) if zero_output else prev_out)
            new = [np.where(m, n, s) for n, s in zip(new, states)]
        states = [np.asarray(s, dtype) for s in new]
        prev_out = np.asarray(out, dtype)
        outputs.append(prev_out)
    seq = np.stack(outputs, axis=1) if outputs else np.zeros((batch, 0, units), dtype)
    return seq, prev_out, states


def _backprop(kind, x, kernel, recurrent, bias, mask, backwards, a, tape, d_seq, d_last, d_final):
    """Backpropagation through time for one direction run by ``_run`` with ``tape``.

    ``d_seq`` is the gradient of the outputs in processing order (or None), ``d_last`` that of
    the last output and ``d_final`` those of the final states (None entries: no gradient).
    Returns ``(dx, dkernel, drecurrent, dbias|None, [d initial state per state])``. The per-step
    gradients are written into time-major buffers, so the weight gradients are one matmul each.
    """
    units, reset_after, zero_output = a.units, a.reset_after, a.zero_output_for_mask
    act_vjp, rec_vjp = _activation_vjp(a.activation), _activation_vjp(a.recurrent_activation)
    batch, time, _ = x.shape
    dtype = x.dtype
    width = KINDS[kind][0] * units
    u2 = 2 * units
    d_proj = np.empty((time, batch, width), dtype)  # d loss / d (x @ kernel + bias), time-major
    rec_in = np.empty((time, batch, units), dtype)  # the state each step multiplied by `recurrent`
    d_inner = np.empty((time, batch, width), dtype) if kind == "gru" and reset_after else d_proj
    hidden_in = np.empty((time, batch, units), dtype) if kind == "gru" and not reset_after else None
    zero = np.zeros((batch, units), dtype)
    d_out = zero if d_last is None else d_last.astype(dtype, copy=False)
    d_states = [zero if d is None else d.astype(dtype, copy=False) for d in d_final]
    steps = list(range(time - 1, -1, -1) if backwards else range(time))
    in_masks, rec_masks = tape[0]
    for k in range(time - 1, -1, -1):
        t = steps[k]
        prev_states, new, record = tape[k + 1]
        g_out = d_out if d_seq is None else d_out + d_seq[:, k]
        if mask is not None:
            m = mask[:, t, None].astype(bool)
            d_new = [np.where(m, d, zero) for d in d_states]
            carry = [np.where(m, zero, d) for d in d_states]
            d_new[0] = d_new[0] + np.where(m, g_out, zero)
            d_out = zero if zero_output else np.where(m, zero, g_out)
        else:
            d_new = list(d_states)
            d_new[0] = d_new[0] + g_out
            carry = None
            d_out = zero
        h = prev_states[0]
        rec_in[t] = h
        dz = d_proj[t]
        if kind == "simple_rnn":
            (pre,) = record
            dz[...] = act_vjp(pre, new[0], d_new[0])
            d_prev = [_gate_matmul_dh(dz, recurrent, rec_masks)]
        elif kind == "lstm":
            z, i_, f_, g_, o_, c, tc = record
            dh, dc = d_new
            dc = dc + act_vjp(c, tc, dh * o_)
            dz[:, :units] = rec_vjp(z[:, :units], i_, dc * g_)
            dz[:, units:u2] = rec_vjp(z[:, units:u2], f_, dc * prev_states[1])
            dz[:, u2 : 3 * units] = act_vjp(z[:, u2 : 3 * units], g_, dc * i_)
            dz[:, 3 * units :] = rec_vjp(z[:, 3 * units :], o_, dh * tc)
            d_prev = [_gate_matmul_dh(dz, recurrent, rec_masks), dc * f_]
        else:
            pz, pr, z, r, hidden, ph, hh = record
            dh = d_new[0]
            dph = act_vjp(ph, hh, dh * (1 - z))
            dz[:, :units] = rec_vjp(pz, z, dh * (h - hh))
            dz[:, u2:] = dph
            dh_prev = dh * z
            if reset_after:
                dz[:, units:u2] = rec_vjp(pr, r, dph * hidden)
                di = d_inner[t]
                di[:, :u2] = dz[:, :u2]
                di[:, u2:] = dph * r
                dh_prev = dh_prev + _gate_matmul_dh(di, recurrent, rec_masks)
            else:
                hidden_in[t] = hidden
                d_hidden = dph @ recurrent[:, u2:].T
                h_cand = h if rec_masks is None else h * rec_masks[2]  # hidden = r * h_cand
                dz[:, units:u2] = rec_vjp(pr, r, d_hidden * h_cand)
                d_cand = d_hidden * r if rec_masks is None else d_hidden * r * rec_masks[2]
                gate_masks = None if rec_masks is None else rec_masks[:2]
                dh_prev = dh_prev + d_cand + _gate_matmul_dh(dz[:, :u2], recurrent[:, :u2], gate_masks)
            d_prev = [dh_prev]
        d_states = d_prev if carry is None else [p + c for p, c in zip(d_prev, carry)]

    flat = d_proj.reshape(-1, width)
    if hidden_in is not None:  # GRU, reset_after=False: the candidate block multiplies r * h
        gate_masks = None if rec_masks is None else rec_masks[:2]
        d_recurrent = np.concatenate(
            [_gate_matmul_dw(rec_in, d_proj[..., :u2], gate_masks), hidden_in.reshape(-1, units).T @ flat[:, u2:]],
            axis=1,
        )
    else:
        d_recurrent = _gate_matmul_dw(rec_in, d_inner, rec_masks)
    d_proj_bt = d_proj.transpose(1, 0, 2)
    if in_masks is None:
        dx = np.matmul(d_proj_bt, kernel.T)
        d_kernel = np.tensordot(x, d_proj, axes=([0, 1], [1, 0]))
    else:
        x_masks = in_masks[:, :, None, :]
        dx = _gate_matmul_dh(d_proj_bt, kernel, x_masks)
        d_kernel = _gate_matmul_dw(x, d_proj_bt, x_masks)
    d_bias = None
    if bias is not None:
        d_bias = flat.sum(axis=0)
        if kind == "gru" and reset_after:
            d_bias = np.stack([d_bias, d_inner.reshape(-1, width).sum(axis=0)])
    grads = [np.asarray(g, dtype) if g is not None else None for g in (dx, d_kernel, d_recurrent, d_bias)]
    return (*grads, [np.asarray(d, dtype) for d in d_states])


def _merge_vjp(cotangents, outputs, mode, directions, split):
    """The gradients of each direction's output from those of the primitive's output(s)."""
    if directions == 1 or split:
        return list(cotangents)
    (g,) = cotangents
    if g is None:
        return [None, None]
    if mode == "concat":
        units = outputs[0].shape[-1]
        return [g[..., :units], g[..., units:]]
    if mode == "sum":
        return [g, g]
    if mode == "mul":
        return [g * outputs[1], g * outputs[0]]
    half = g * np.asarray(0.5, g.dtype)
    return [half, half]


def _merge(a, b, mode):
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    return ((a + b) / np.asarray(2, a.dtype)).astype(a.dtype)


# -- public functions -----------------------------------------------------------------------------
@top_level_op("RecurrentOp")
def recurrent(
    kind,
    inputs,
    kernel,
    recurrent_kernel,
    bias=None,
    initial_state=None,
    mask=None,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    reset_after=False,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    flip_output=False,
    zero_output_for_mask=False,
    backward=None,
    merge_mode="concat",
    dropout=0.0,
    recurrent_dropout=0.0,
    training=None,
):
    """Run a ``kind`` ("simple_rnn", "lstm", "gru") recurrent layer over ``inputs (B, T, F)``.

    ``backward=(kernel, recurrent_kernel, bias)`` makes it bidirectional: the backward direction
    runs from the last step, its outputs are aligned with the inputs' time order and merged with
    ``merge_mode`` (None returns both); ``zero_output_for_mask`` is then ``return_sequences``, as
    Keras' Bidirectional forces. ``initial_state`` is a list of ``(B, units)`` tensors (forward
    first). Returns the output, or ``[output(s)..., states...]`` with ``return_state``.

    ``dropout`` / ``recurrent_dropout`` (Keras' rates, each direction its own masks) act when the
    graph trains, or in an eager call with ``training=True``; ``training=False`` turns them off.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown recurrent kind {kind!r}: expected one of {sorted(KINDS)}.")
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of {MERGE_MODES}")
    units = int(recurrent_kernel.shape[0])
    use_bias = bias is not None
    items = [inputs, kernel, recurrent_kernel] + ([bias] if use_bias else [])
    bidirectional = backward is not None
    if bidirectional:
        b_kernel, b_recurrent, b_bias = (list(backward) + [None])[:3]
        if (b_bias is not None) != use_bias:
            raise ValueError("Both directions of a bidirectional RNN must have a bias, or neither.")
        items += [b_kernel, b_recurrent] + ([b_bias] if use_bias else [])
        zero_output_for_mask = bool(return_sequences)
    if initial_state is not None:
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        expected = KINDS[kind][1] * (2 if bidirectional else 1)
        if len(initial_state) != expected:
            raise ValueError(
                f"A {'bidirectional ' if bidirectional else ''}{kind} expects {expected} initial state tensor(s). "
                f"Received: {len(initial_state)}"
            )
        items += list(initial_state)
    if mask is not None:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not hasattr(mask, "shape"):
            mask = np.asarray(mask)
        if spec_of(mask).dtype != "bool":
            mask = ew.cast(mask, "bool")
        items.append(mask)
    attrs = dict(
        units=units,
        activation=activation_attr(activation),
        recurrent_activation=activation_attr(recurrent_activation) if kind != "simple_rnn" else None,
        use_bias=use_bias,
        reset_after=bool(reset_after) if kind == "gru" else False,
        has_initial_state=initial_state is not None,
        has_mask=mask is not None,
        return_sequences=bool(return_sequences),
        go_backwards=bool(go_backwards) if not bidirectional else False,
        flip_output=bool(flip_output) if not bidirectional else False,
        zero_output_for_mask=bool(zero_output_for_mask),
        merge_mode=merge_mode if bidirectional else None,
    )
    for key, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
        rate = min(1.0, max(0.0, float(rate)))
        if rate > 0 and training is not False:
            attrs[key] = rate
    split = bidirectional and merge_mode is None
    prim = recurrent_primitive(kind, bidirectional, split, bool(return_state))
    items = [x if hasattr(x, "shape") else np.asarray(x, "float32") for x in items]
    prim.infer([spec_of(x) for x in items], **attrs)  # clear shape errors for eager calls too
    eager = not any(isinstance(x, SymbolicTensor) for x in items)
    if eager and training and ("dropout" in attrs or "recurrent_dropout" in attrs):
        outputs = prim.training_kernel(attrs, random.generator())(*items)[0]
        outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
    else:
        outputs = apply(prim, items, **attrs)
    if not return_state:
        return outputs if split else outputs[0]
    return outputs


@top_level_op("SimpleRnnOp")
def simple_rnn(inputs, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None, **kwargs):
    """Keras' SimpleRNN recurrence ``h = activation(x @ kernel + h @ recurrent_kernel + bias)``."""
    return recurrent("simple_rnn", inputs, kernel, recurrent_kernel, bias, initial_state, mask, **kwargs)


@top_level_op("LstmOp")
def lstm(inputs, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None, **kwargs):
    """Keras' LSTM recurrence (gate blocks i, f, c, o); states ``[h, c]``."""
    return recurrent("lstm", inputs, kernel, recurrent_kernel, bias, initial_state, mask, **kwargs)


@top_level_op("GruOp")
def gru(inputs, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None, reset_after=True, **kwargs):
    """Keras' GRU recurrence (gate blocks z, r, h); bias ``(2, 3u)`` with ``reset_after``, else ``(3u,)``."""
    return recurrent(
        "gru", inputs, kernel, recurrent_kernel, bias, initial_state, mask, reset_after=reset_after, **kwargs
    )
