"""A generic recurrence: ``scan`` runs a traced step graph over the time axis (Keras' ``backend.rnn``).

``rnn(step_function, inputs, initial_states, ...)`` traces ``step_function(x_t, states)`` once on
symbolic one-step tensors into an ``ir.Graph`` (the **body**: inputs ``[x_t, *states, *weights]``,
outputs ``[output, *new_states]``) and applies one ``scan`` primitive whose attribute is that
body. The weights the step reads are not frozen into the body: they become body inputs bound to
``Variable`` operands of the scan op, so training, ``set_weights`` and the export all see the
current values, exactly as for any other op.

Semantics are Keras' (``keras.src.backend.*.rnn``, not unrolled): steps run in time order, or
reversed with ``go_backwards`` (the outputs then stay in processing order, as in Keras); with a
mask, a masked step keeps the previous states and repeats the previous output (zeros with
``zero_output_for_mask``; zeros before the first unmasked step). The op's outputs are
``[outputs (B, T, ...), last_output (B, ...), *final_states]``.

The rules: ``forward`` loops in NumPy over a dynamic time axis with the body compiled once
(``ir.executor``); ``vjp`` is backpropagation through time, running the body's reverse sweep
(``ops.gradients.ReverseSweep``) once per step; ``to_onnx`` is one ONNX ``Scan`` over axis 1 whose
body is the lowered step graph (``ctx.lower_graph``) plus ``Where`` nodes for the mask.
"""

from __future__ import annotations

import functools
import inspect
import weakref

import numpy as np
from onnx import helper

from irtool.ir import tree
from irtool.ir.executor import CompiledGraph
from irtool.ir.spec import TensorSpec
from irtool.ops.core import Primitive, SymbolicTensor, apply
from irtool.ops.gradients import ReverseSweep
from irtool.ops.graph_from_trace import build_graph
from irtool.ops.rnn_lowering import subgraph

# Compiled forms of a body, made on first use and dropped with the body.
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sweeps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_body(body) -> CompiledGraph:
    compiled = _compiled.get(body)
    if compiled is None:
        compiled = _compiled[body] = CompiledGraph(body)
    return compiled


def _sweep(body) -> ReverseSweep:
    sweep = _sweeps.get(body)
    if sweep is None:
        floats = [v for v in body.inputs if np.issubdtype(np.dtype(body.spec(v).dtype), np.floating)]
        sweep = _sweeps[body] = ReverseSweep(body, floats, training=False)
    return sweep


def _split(arrays, n_states, has_initial_state, has_mask):
    x, rest = arrays[0], list(arrays[1:])
    states = rest[:n_states] if has_initial_state else None
    rest = rest[n_states:] if has_initial_state else rest
    mask = rest[0] if has_mask else None
    weights = rest[1:] if has_mask else rest
    return x, states, mask, weights


def _column(mask_t, ndim):
    """A ``(B,)`` mask step shaped to broadcast against a ``(B, ...)`` value of rank ``ndim``."""
    return mask_t.reshape(mask_t.shape + (1,) * (ndim - 1))


class Scan(Primitive):
    """``scan(x, *initial_states, mask, *weights; body)``: the recurrence of the module docstring."""

    name = "scan"

    def __init__(self, n_states: int):
        self.n_states = n_states
        self.num_outputs = 2 + n_states

    def infer(self, specs, body, has_initial_state, has_mask, go_backwards, zero_output_for_mask, state_shapes):
        x = specs[0]
        if x.ndim < 3:
            raise ValueError(f"scan expects inputs of shape (batch, time, ...), received shape {x.shape}.")
        batch, time = x.shape[0], x.shape[1]
        out = body.spec(body.outputs[0])
        dtype = x.dtype if np.issubdtype(np.dtype(out.dtype), np.floating) else out.dtype
        states = [body.spec(v) for v in body.outputs[1:]]
        return [
            TensorSpec((batch, time, *out.shape[1:]), dtype),
            TensorSpec((batch, *out.shape[1:]), dtype),
            *[TensorSpec((batch, *s.shape[1:]), dtype) for s in states],
        ]

    def _initial(self, x, states, state_shapes):
        if states is not None:
            return list(states)
        return [np.zeros((x.shape[0], *shape), dtype=x.dtype) for shape in state_shapes]

    def _order(self, length, go_backwards):
        if length == 0:
            raise ValueError("scan needs at least one time step; received a sequence of length 0.")
        return range(length - 1, -1, -1) if go_backwards else range(length)

    def forward(self, *arrays, body, has_initial_state, has_mask, go_backwards, zero_output_for_mask, state_shapes):
        x, states, mask, weights = _split(arrays, self.n_states, has_initial_state, has_mask)
        states = self._initial(x, states, state_shapes)
        run = _compiled_body(body).run
        outputs, previous = [], None
        for t in self._order(x.shape[1], go_backwards):
            out, *new = run([x[:, t], *states, *weights])
            if mask is not None:
                m = mask[:, t]
                if previous is None or zero_output_for_mask:
                    previous = np.zeros_like(out)
                out = np.where(_column(m, out.ndim), out, previous)
                new = [np.where(_column(m, n.ndim), n, s) for n, s in zip(new, states)]
                previous = out
            states = new
            outputs.append(out)
        dtype = x.dtype if np.issubdtype(outputs[0].dtype, np.floating) else outputs[0].dtype
        sequence = np.stack(outputs, axis=1).astype(dtype, copy=False)
        return (sequence, sequence[:, -1], *[np.asarray(s, dtype=dtype) for s in states])

    def vjp(
        self,
        cotangents,
        inputs,
        outputs,
        body,
        has_initial_state,
        has_mask,
        go_backwards,
        zero_output_for_mask,
        state_shapes,
    ):
        x, given_states, mask, weights = _split(inputs, self.n_states, has_initial_state, has_mask)
        states = self._initial(x, given_states, state_shapes)
        sweep = _sweep(body)
        float_inputs = set(sweep.wrt)
        order = list(self._order(x.shape[1], go_backwards))
        # Forward again, keeping each step's environment for its reverse sweep.
        envs = []
        for t in order:
            env = sweep.forward([x[:, t], *states, *weights])
            out, *new = sweep.outputs(env)
            if mask is not None:
                m = mask[:, t]
                new = [np.where(_column(m, n.ndim), n, s) for n, s in zip(new, states)]
            envs.append(env)
            states = new
        g_seq, g_last, *g_final = cotangents
        g_x = np.zeros_like(x)
        g_states = [np.zeros_like(s) if g is None else g for g, s in zip(g_final, states)]
        g_weights = [np.zeros_like(w) for w in weights]
        g_carry = None  # gradient reaching the output repeated at the next (masked) step
        last = len(order) - 1
        for k in range(last, -1, -1):
            t = order[k]
            g_out = g_seq[:, k] if g_seq is not None else None
            if k == last and g_last is not None:
                g_out = g_last if g_out is None else g_out + g_last
            if g_carry is not None:
                g_out = g_carry if g_out is None else g_out + g_carry
            g_pass = [None] * self.n_states
            g_body_states = g_states
            if mask is not None:
                m = mask[:, t]
                if g_out is not None:
                    col = _column(m, g_out.ndim)
                    g_carry = None if zero_output_for_mask else np.where(col, 0, g_out)
                    g_out = np.where(col, g_out, 0)
                g_body_states = [np.where(_column(m, g.ndim), g, 0) for g in g_states]
                g_pass = [np.where(_column(m, g.ndim), 0, g) for g in g_states]
            grads = sweep.backward(envs[k], [g_out, *g_body_states])
            by_input = dict(zip(sweep.wrt, grads))
            full = [by_input.get(v) if v in float_inputs else None for v in body.inputs]
            if full[0] is not None:
                g_x[:, t] = full[0]
            g_states = []
            for j in range(self.n_states):
                g = full[1 + j]
                g = np.zeros_like(envs[k][sweep.input_slots[1 + j]]) if g is None else g
                g_states.append(g if g_pass[j] is None else g + g_pass[j])
            for j in range(len(weights)):
                g = full[1 + self.n_states + j]
                if g is not None:
                    g_weights[j] = g_weights[j] + g
        is_float = np.issubdtype(x.dtype, np.floating)
        result = [g_x if is_float else None]
        if has_initial_state:
            result += [g.astype(s.dtype, copy=False) for g, s in zip(g_states, given_states)]
        if has_mask:
            result.append(None)
        result += [g if np.issubdtype(np.asarray(w).dtype, np.floating) else None for g, w in zip(g_weights, weights)]
        return result

    def to_onnx(
        self, ctx, ins, outs, body, has_initial_state, has_mask, go_backwards, zero_output_for_mask, state_shapes
    ):
        x, states, mask, weights = _split(ins, self.n_states, has_initial_state, has_mask)
        dtype = ctx.dtype_of(x)
        out_spec = body.spec(body.outputs[0])
        state_specs = [body.spec(v) for v in body.outputs[1:]]
        if states is None:
            states = [_zeros(ctx, x, shape, dtype) for shape in state_shapes]
        carried = list(states)
        if mask is not None:
            if any(d is None for d in out_spec.shape[1:]):
                ctx.fail(self, f"a masked step output needs a static shape, got {out_spec.shape}")
            carried.append(_zeros(ctx, x, out_spec.shape[1:], dtype))  # the previous output
            mask = ctx.node("Cast", [mask], to=ctx.onnx_dtype("bool"))[0]
        scope = ctx.scope
        state_in = [ctx.unique(f"{scope}/scan/state{j}") for j in range(self.n_states)]
        prev_in = ctx.unique(f"{scope}/scan/previous_output")
        x_in, m_in = ctx.unique(f"{scope}/scan/x_t"), ctx.unique(f"{scope}/scan/mask_t")
        x_spec = ctx.shapes.get(x)
        step_shape = None if x_spec is None else (x_spec[0], *x_spec[2:])
        inputs = [(n, dtype, (None, *s.shape[1:])) for n, s in zip(state_in, state_specs)]
        if mask is not None:
            inputs.append((prev_in, dtype, (None, *out_spec.shape[1:])))
        inputs.append((x_in, dtype, step_shape))
        if mask is not None:
            inputs.append((m_in, "bool", (None,)))
        for n, d, s in inputs:
            ctx.dtypes[n], ctx.shapes[n] = d, s

        def step():
            out, *new = ctx.lower_graph(body, [x_in, *state_in, *weights])
            results = list(new)
            if mask is not None:
                columns = {}

                def where(value, rank, other):
                    if rank not in columns:
                        columns[rank] = ctx.unsqueeze(m_in, list(range(1, rank)))[0]
                    return ctx.node("Where", [columns[rank], value, other])[0]

                other = ctx.const(np.zeros((), dtype)) if zero_output_for_mask else prev_in
                out = where(out, len(out_spec.shape), other)
                results = [where(n, len(s.shape), s_in) for n, s, s_in in zip(new, state_specs, state_in)]
                results.append(out)
            # Scan's body outputs need names of their own (a cell may return one tensor twice).
            results.append(out)
            named = []
            for n in results:
                fresh = ctx.node("Identity", [n])[0]
                ctx.dtypes[fresh], ctx.shapes[fresh] = dtype, ctx.shapes.get(n)
                named.append(fresh)
            return named

        graph = subgraph(ctx, f"{scope}/scan_body", step, inputs)
        scanned = [x] + ([mask] if mask is not None else [])
        attrs = dict(
            body=graph,
            num_scan_inputs=len(scanned),
            scan_input_axes=[1] * len(scanned),
            scan_output_axes=[1],
        )
        if go_backwards:
            attrs["scan_input_directions"] = [1] * len(scanned)
        results = ctx.node("Scan", [*carried, *scanned], len(carried) + 1, **attrs)
        for n in results:
            ctx.dtypes[n] = dtype
        sequence = results[-1]
        ctx.node("Identity", [sequence], [outs[0]])
        ctx.node("Gather", [sequence, ctx.const(np.asarray(-1, np.int64))], [outs[1]], axis=1)
        for name, final in zip(outs[2:], results[: self.n_states]):
            ctx.node("Identity", [final], [name])


def _zeros(ctx, x, shape, dtype) -> str:
    """Zeros of shape ``(batch of x, *shape)``."""
    batch = ctx.node("Slice", [ctx.node("Shape", [x])[0], ctx.int64s([0]), ctx.int64s([1]), ctx.int64s([0])])[0]
    full = ctx.node("Concat", [batch, ctx.int64s(list(shape))], axis=0)[0]
    zero = helper.make_tensor("zero", ctx.onnx_dtype(dtype), [1], [0])
    name = ctx.node("ConstantOfShape", [full], value=zero)[0]
    ctx.dtypes[name] = dtype
    return name


@functools.cache
def scan_primitive(n_states: int) -> Scan:
    """The ``scan`` primitive for a recurrence with ``n_states`` state tensors."""
    return Scan(n_states)


def _accepts_training(fn) -> bool:
    try:
        return "training" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def trace_step(step_function, step_input: TensorSpec, state_specs: list):
    """Trace ``step_function(x_t, states) -> (output, new_states)`` once on symbolic one-step
    tensors. Returns ``(body, weights, structure)``: the body graph (inputs ``[x_t, *states,
    *weights]``, outputs ``[output, *flat_new_states]``), the ``Variable``s it reads, and the
    new states as ``step_function`` returned them (for their nesting)."""
    x_t = SymbolicTensor(step_input.shape, step_input.dtype, name="step_input")
    states = [SymbolicTensor(s.shape, s.dtype, name=f"step_state_{j}") for j, s in enumerate(state_specs)]
    output, new_states = step_function(x_t, states)
    flat_new = tree.flatten(new_states)
    if len(flat_new) != len(states):
        raise ValueError(
            f"The RNN cell returned {len(flat_new)} new state tensors but has {len(states)} states "
            f"(state_size). Received new states: {new_states}"
        )
    for j, (new, old) in enumerate(zip(flat_new, states)):
        if not isinstance(new, SymbolicTensor) or tuple(new.shape[1:]) != tuple(old.shape[1:]):
            raise ValueError(
                f"The RNN cell's new state {j} must have the shape of state {j}, {old.shape}. "
                f"Received: {getattr(new, 'shape', new)}"
            )
    if not isinstance(output, SymbolicTensor):
        raise ValueError(f"The RNN cell must return a tensor as its output. Received: {output!r}")
    outputs = [output, *flat_new]
    paths = ["output"] + [f"state {j}" for j in range(len(flat_new))]
    inputs = [x_t, *states]
    try:
        first = build_graph(inputs, outputs, paths)
    except ValueError as error:
        raise ValueError(
            f"The RNN cell's step reads a tensor that is neither its input nor its states ({error})."
        ) from None
    weights = [first.value(v).payload for v in first.values("weight")]
    body = build_graph(inputs + weights, outputs, paths)
    return body, weights, new_states


def rnn(
    step_function,
    inputs,
    initial_states: list | None,
    state_shapes: list,
    go_backwards: bool = False,
    mask=None,
    zero_output_for_mask: bool = False,
):
    """Keras' ``backend.rnn`` on a traced step: ``(last_output, outputs, new_states)``.

    ``initial_states`` (a flat list, or ``None`` for zeros) has one tensor per entry of
    ``state_shapes`` (the per-sample state shapes). ``mask`` is ``(batch, time)``; ``new_states``
    is flat, in the order of ``state_shapes``.
    """
    shape = tuple(inputs.shape)
    dtype = inputs.dtype if isinstance(inputs.dtype, str) else np.dtype(inputs.dtype).name
    if len(shape) < 3:
        raise ValueError(f"An RNN expects inputs of shape (batch, time, ...). Received: inputs.shape={shape}")
    state_specs = [TensorSpec((shape[0], *s), dtype) for s in state_shapes]
    if initial_states is not None:
        state_specs = [TensorSpec(tuple(s.shape), dtype) for s in initial_states]
    body, weights, _ = trace_step(step_function, TensorSpec((shape[0], *shape[2:]), dtype), state_specs)
    operands = [inputs, *(initial_states or [])]
    if mask is not None:
        operands.append(mask)
    prim = scan_primitive(len(state_shapes))
    results = apply(
        prim,
        [*operands, *weights],
        body=body,
        has_initial_state=initial_states is not None,
        has_mask=mask is not None,
        go_backwards=bool(go_backwards),
        zero_output_for_mask=bool(zero_output_for_mask),
        state_shapes=tuple(tuple(s) for s in state_shapes),
    )
    outputs, last_output, *new_states = results
    return last_output, outputs, new_states


def step_kwargs(fn, training) -> dict:
    """``{"training": training}`` when ``fn`` takes it (Keras passes it only then)."""
    return {"training": training} if _accepts_training(fn) else {}
