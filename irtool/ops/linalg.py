"""Matrix products: ``matmul`` (NumPy semantics, batched and broadcast), ``einsum``, the fused
``matmul_add`` that ``ops.fusion`` makes from a Dense layer's product and bias, the
triangles ``tril``/``triu`` (one ``trilu`` primitive), and NumPy's other products and
diagonals written as einsum (``tensordot``, ``dot``, ``inner``, ``outer``, ``vdot``,
``diagonal``, ``trace``)."""

from __future__ import annotations

import numpy as np

from irtool.ir.spec import TensorSpec, broadcast_shapes
from irtool.ops.core import Primitive, apply, as_operand
from irtool.ops.elementwise import ZEROS, promote
from irtool.ops.elementwise import multiply as _multiply
from irtool.ops.gradients import unbroadcast
from irtool.ops.operation import top_level_op
from irtool.ops.reduce import sum as reduce_sum
from irtool.ops.shape import reshape, take, transpose


class Matmul(Primitive):
    name = "matmul"

    def infer(self, specs):
        a, b = specs
        if a.dtype != b.dtype:
            raise ValueError(f"`matmul` needs operands of one dtype. Received: {a.dtype} and {b.dtype}.")
        if not a.shape or not b.shape:
            raise ValueError(f"`matmul` does not accept scalars. Received: shapes {a.shape} and {b.shape}.")
        sa = (1,) + a.shape if len(a.shape) == 1 else a.shape
        sb = b.shape + (1,) if len(b.shape) == 1 else b.shape
        if None not in (sa[-1], sb[-2]) and sa[-1] != sb[-2]:
            raise ValueError(
                "Inner dimensions of `matmul` must match: the last axis of x1 and the second-to-last of x2. "
                f"Received: x1.shape={a.shape}, x2.shape={b.shape}"
            )
        try:
            batch = broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ValueError(
                "The batch dimensions of `matmul` operands could not be broadcast together. "
                f"Received: x1.shape={a.shape}, x2.shape={b.shape}"
            ) from None
        shape = batch + (sa[-2], sb[-1])
        if len(a.shape) == 1:
            shape = shape[:-2] + shape[-1:]
        if len(b.shape) == 1:
            shape = shape[:-1]
        return [TensorSpec(shape, a.dtype)]

    def forward(self, a, b):
        return np.matmul(a, b)

    def kernel(self, attrs):
        return np.matmul

    vjp_uses_needs = True

    def vjp(self, cotangents, inputs, outputs, needs=(True, True)):
        (g,), (a, b) = cotangents, inputs
        if a.ndim == b.ndim == 2:
            # A Dense layer's product: two BLAS calls, and none for a gradient nobody reads (the
            # input gradient of a model's first layer, a frozen weight's).
            return [g @ b.T if needs[0] else None, a.T @ g if needs[1] else None]
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
        gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
        ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return [ga, gb]

    def to_onnx(self, ctx, ins, outs):
        ctx.node("MatMul", ins, outs)


MATMUL = Matmul()


class MatmulAdd(Primitive):
    """``x @ w + b`` for 2-D ``x`` and ``w`` and 1-D ``b``: a Dense layer's product and bias as one
    op, and with ``activation="relu"`` its ReLU too. Tracing never records it; the fusion passes
    (ops/fusion.py) make it from a ``matmul`` whose only reader is an ``add`` (for the executor
    and for ONNX, one ``Gemm``) and, for the executor only, fold a ``relu`` that is the sum's
    only reader, computed in place on the fresh product.

    The executor binds ``b`` as a ``(1, m)`` view (``bound_operand``): adding an operand of the
    product's rank skips NumPy's broadcasting set-up, ~1 µs of the ~2 µs a batch-1 Dense took.
    """

    name = "matmul_add"

    def infer(self, specs, activation=None):
        x, w, b = specs
        if len(x.shape) != 2 or len(w.shape) != 2 or b.shape != (w.shape[1],):
            raise ValueError(
                f"`matmul_add` needs x (n, k), w (k, m) and b (m,). Received: {x.shape}, {w.shape} and {b.shape}."
            )
        (product,) = MATMUL.infer([x, w])
        if not x.dtype == w.dtype == b.dtype:
            raise ValueError(f"`matmul_add` needs one dtype. Received: {x.dtype}, {w.dtype} and {b.dtype}.")
        if activation not in (None, "relu"):
            raise ValueError(f"`matmul_add` fuses no activation or 'relu'. Received: activation={activation!r}.")
        return [product]

    def forward(self, x, w, b, activation=None):
        y = x.dot(w)  # ndarray.dot is matmul for 2-D operands, with less call overhead
        y += b
        if activation == "relu":
            np.maximum(y, ZEROS[y.dtype], out=y)  # y is this op's own buffer
        return y

    def kernel(self, attrs):
        if attrs.get("activation") != "relu":
            return _matmul_add

        def matmul_add_relu(x, w, b):
            y = x.dot(w)
            y += b
            # A 0-d array of y's dtype: the cheapest second operand for the ufunc (a Python 0 or
            # a NumPy scalar costs 0.2-1 µs more per call at batch 1).
            np.maximum(y, ZEROS[y.dtype], out=y)
            return y

        return matmul_add_relu

    def bound_operand(self, attrs, index, array):
        return array[None] if index == 2 and array.ndim == 1 else array

    def vjp(self, cotangents, inputs, outputs, activation=None):
        (g,), (x, w, _), (y,) = cotangents, inputs, outputs
        if activation == "relu":
            g = g * (y > 0)
        return [g @ w.T, x.T @ g, g.sum(axis=0)]

    def to_onnx(self, ctx, ins, outs, activation=None):
        if activation == "relu":
            (total,) = ctx.node("Gemm", ins, 1)
            ctx.node("Relu", [total], outs)
        else:
            ctx.node("Gemm", ins, outs)


def _matmul_add(x, w, b):
    y = x.dot(w)
    y += b
    return y


MATMUL_ADD = MatmulAdd()


@top_level_op("Matmul")
def matmul(x1, x2):
    """Matrix product with NumPy's broadcasting rules (``x1 @ x2``)."""
    a, b, _ = promote(x1, x2)
    return apply(MATMUL, [a, b])[0]


class Einsum(Primitive):
    name = "einsum"

    def infer(self, specs, equation):
        dims = {}
        lhs, _, rhs = equation.partition("->")
        for term, spec in zip(lhs.split(","), specs):
            if len(term) != len(spec.shape):
                raise ValueError(f"`einsum` term {term!r} does not match an operand of shape {spec.shape}.")
            for letter, d in zip(term, spec.shape):
                if d is not None and dims.get(letter) not in (None, 1) and d not in (1, dims[letter]):
                    raise ValueError(f"`einsum` dimension {letter!r} has sizes {dims[letter]} and {d}.")
                if dims.get(letter) in (None, 1):
                    dims[letter] = d
        return [TensorSpec(tuple(dims[c] for c in rhs), specs[0].dtype)]

    def forward(self, *xs, equation):
        return np.einsum(equation, *xs)

    def kernel(self, attrs):
        eq = attrs["equation"]
        return lambda *xs: np.einsum(eq, *xs, optimize=len(xs) > 2)

    def vjp(self, cotangents, inputs, outputs, equation):
        lhs, out = equation.split("->")
        terms = lhs.split(",")
        grads = []
        for i, term in enumerate(terms):
            if len(set(term)) != len(term):
                raise NotImplementedError(f"einsum gradient with a repeated index ({term!r}) is not supported.")
            others = [t for j, t in enumerate(terms) if j != i]
            present = "".join(c for c in term if c in out or any(c in t for t in others))
            spec = ",".join([out, *others]) + "->" + present
            grad = np.einsum(spec, cotangents[0], *[x for j, x in enumerate(inputs) if j != i])
            if present != term:  # letters summed only in this operand: broadcast back
                grad = np.expand_dims(grad, [k for k, c in enumerate(term) if c not in present])
                grad = np.broadcast_to(grad, inputs[i].shape)
            grads.append(np.ascontiguousarray(grad))
        return grads

    def to_onnx(self, ctx, ins, outs, equation):
        ctx.node("Einsum", ins, outs, equation=equation)


EINSUM = Einsum()


@top_level_op("Einsum")
def einsum(subscripts: str, *operands):
    """Einstein summation (explicit ``->`` output added when omitted, as NumPy implies it)."""
    eq = subscripts.replace(" ", "")
    if "..." in eq:
        raise ValueError("`einsum` with '...' is not supported; name every axis.")
    if "->" not in eq:
        letters = eq.replace(",", "")
        eq += "->" + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ops = list(operands)
    if len(ops) > 1:
        first, ops[1], _ = promote(ops[0], ops[1])
        ops[0] = first
    return apply(EINSUM, ops, equation=eq)[0]


class Trilu(Primitive):
    """The lower (``tril``) or upper (``triu``) triangle of the last two axes; ``k`` shifts the diagonal."""

    name = "trilu"

    def infer(self, specs, k, upper):
        (x,) = specs
        if len(x.shape) < 2:
            raise ValueError(f"`{'triu' if upper else 'tril'}` needs a tensor of rank >= 2. Received: shape={x.shape}")
        return [x]

    def forward(self, x, k, upper):
        return np.triu(x, k) if upper else np.tril(x, k)

    def vjp(self, cotangents, inputs, outputs, k, upper):
        return [self.forward(cotangents[0], k=k, upper=upper)] + [None] * (len(inputs) - 1)

    def to_onnx(self, ctx, ins, outs, k, upper):
        if ctx.opset < 14:
            ctx.fail(self, f"ONNX Trilu needs opset >= 14 (target opset {ctx.opset})")
        ctx.node("Trilu", [ins[0], ctx.const(np.asarray(k, np.int64))], outs, upper=int(upper))


TRILU = Trilu()


def _trilu(x, k, upper):
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    return apply(TRILU, [x], k=int(k), upper=upper)[0]


@top_level_op("Tril")
def tril(x, k=0):
    """Zero the entries above the ``k``-th diagonal of the last two axes."""
    return _trilu(x, k, False)


@top_level_op("Triu")
def triu(x, k=0):
    """Zero the entries below the ``k``-th diagonal of the last two axes."""
    return _trilu(x, k, True)


# ---------------------------------------------------------------------------------------
# NumPy's other products, written as einsum (one primitive, one ONNX Einsum or MatMul)

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@top_level_op("Tensordot")
def tensordot(x1, x2, axes=2):
    """Sum products over ``axes``: the last ``axes`` of ``x1`` with the first of ``x2``, or the
    two lists of axes ``([a1...], [b1...])``, as ``np.tensordot``."""
    x1, x2 = as_operand(x1), as_operand(x2)
    n1, n2 = len(x1.shape), len(x2.shape)
    if isinstance(axes, int):
        summed1, summed2 = list(range(n1 - axes, n1)), list(range(axes))
    else:
        summed1, summed2 = ([a] if isinstance(a, int) else list(a) for a in axes)
    summed1 = [a % n1 for a in summed1]
    summed2 = [a % n2 for a in summed2]
    left = _LETTERS[:n1]
    right = [None] * n2
    for a, b in zip(summed1, summed2):
        right[b] = left[a]
    free = iter(_LETTERS[n1:])
    right = "".join(r if r is not None else next(free) for r in right)
    out = "".join(c for i, c in enumerate(left) if i not in summed1) + "".join(
        c for i, c in enumerate(right) if i not in summed2
    )
    return einsum(f"{left},{right}->{out}", x1, x2)


@top_level_op("Outer")
def outer(x1, x2):
    """The outer product of the flattened operands."""
    x1, x2 = as_operand(x1), as_operand(x2)
    return einsum("i,j->ij", _flat(x1), _flat(x2))


@top_level_op("Inner")
def inner(x1, x2):
    """Sum products over the last axes (``np.inner``); a scalar operand multiplies."""
    if np.ndim(x1) == 0 or np.ndim(x2) == 0:  # a scalar multiplies, in the tensor's dtype
        return _multiply(x1, x2)
    x1, x2 = as_operand(x1), as_operand(x2)
    return tensordot(x1, x2, axes=([-1], [-1]))


@top_level_op("Dot")
def dot(x1, x2):
    """``np.dot``: products of scalars, 1-D inner products, matrix products, and for N-D arrays the
    sum over the last axis of ``x1`` and the second-to-last of ``x2``."""
    if np.ndim(x1) == 0 or np.ndim(x2) == 0:  # a scalar multiplies, in the tensor's dtype
        return _multiply(x1, x2)
    x1, x2 = as_operand(x1), as_operand(x2)
    if len(x2.shape) == 1:
        return tensordot(x1, x2, axes=([-1], [0]))
    if len(x1.shape) <= 2 and len(x2.shape) == 2:
        return matmul(x1, x2)
    return tensordot(x1, x2, axes=([-1], [-2]))


@top_level_op("Vdot")
def vdot(x1, x2):
    """The inner product of the flattened operands."""
    x1, x2 = as_operand(x1), as_operand(x2)
    return einsum("i,i->", _flat(x1), _flat(x2))


@top_level_op("Diagonal")
def diagonal(x, offset=0, axis1=0, axis2=1):
    """The ``offset`` diagonal of the 2-D slices on ``axis1``/``axis2``, as a last axis (``np.diagonal``)."""
    x = as_operand(x)
    n = len(x.shape)
    axis1, axis2 = axis1 % n, axis2 % n
    rows, cols = x.shape[axis1], x.shape[axis2]
    if rows is None or cols is None:
        raise ValueError(f"`diagonal` needs static sizes on axes {axis1} and {axis2}. Received: shape={x.shape}")
    keep = [a for a in range(n) if a not in (axis1, axis2)]
    moved = transpose(x, [*keep, axis1, axis2])
    length = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
    start = (0, offset) if offset >= 0 else (-offset, 0)
    flat_index = np.array([(start[0] + i) * cols + start[1] + i for i in range(length)], "int64")
    return take(reshape(moved, (*[-1 if d is None else d for d in moved.shape[:-2]], rows * cols)), flat_index, axis=-1)


@top_level_op("Trace")
def trace(x, offset=0, axis1=0, axis2=1):
    """The sum of the ``offset`` diagonal (``np.trace``)."""
    return reduce_sum(diagonal(x, offset, axis1, axis2), axis=-1)


def _flat(x):
    return reshape(x, (-1,))
