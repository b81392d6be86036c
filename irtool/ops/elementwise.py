"""Elementwise primitives: binary arithmetic and comparisons, unary math and activations.

Operands of binary ops are promoted to one dtype before the primitive is recorded (Python
scalars take the tensor's dtype, ints meeting floats become that float, as in Keras), so
every primitive here sees equal input dtypes and lowers to a single ONNX node.
"""

from __future__ import annotations

import math

import numpy as np

from irtool.ir.dtypes import is_float, result_dtype, standardize_dtype
from irtool.ir.spec import TensorSpec, broadcast_shapes
from irtool.ops.core import Primitive, SymbolicTensor, apply
from irtool.ops.gradients import is_differentiable, unbroadcast
from irtool.ops.operation import top_level_op


class Binary(Primitive):
    """``out = fn(a, b)`` with NumPy broadcasting; ``boolean`` ops return bool."""

    elementwise = True

    def __init__(self, name: str, fn, onnx_op: str, boolean: bool = False):
        self.name = name
        self.fn = fn
        self.onnx_op = onnx_op
        self.boolean = boolean
        self.differentiable = not boolean  # comparisons and logical ops have no gradient

    def infer(self, specs, **attrs):
        a, b = specs
        if a.dtype != b.dtype:
            raise ValueError(f"`{self.name}` needs operands of one dtype. Received: {a.dtype} and {b.dtype}.")
        try:
            shape = broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"Operands of `{self.name}` could not be broadcast together. Received: shapes {a.shape} and {b.shape}."
            ) from None
        return [TensorSpec(shape, "bool" if self.boolean else a.dtype)]

    def forward(self, a, b):
        out = self.fn(a, b)
        if not self.boolean and out.dtype != a.dtype:
            out = out.astype(a.dtype)
        return out

    def kernel(self, attrs):
        if self.boolean or self.name in ("add", "subtract", "multiply", "maximum", "minimum"):
            return self.fn  # the ufunc itself: operands already share one dtype
        return self.forward

    def to_onnx(self, ctx, ins, outs):
        ctx.node(self.onnx_op, ins, outs)

    def vjp(self, cotangents, inputs, outputs):
        (g,), (a, b), (y,) = cotangents, inputs, outputs
        rule = _BINARY_GRADS.get(self.name)
        if rule is None or self.boolean or not is_differentiable(a):
            return [None, None]
        ga, gb = rule(g, a, b, y)
        return [None if ga is None else unbroadcast(ga, a.shape), None if gb is None else unbroadcast(gb, b.shape)]


def _power_grads(g, a, b, y):
    safe_log = np.log(np.where(a > 0, a, 1)).astype(a.dtype)
    return g * b * np.power(a, b - 1), g * y * safe_log


# d(out)/d(operand) rules, as (grad_a, grad_b) from (g, a, b, y). Ties in maximum/minimum send
# the gradient to the first operand, as TensorFlow/Keras do.
_BINARY_GRADS = {
    "add": lambda g, a, b, y: (g, g),
    "subtract": lambda g, a, b, y: (g, -g),
    "multiply": lambda g, a, b, y: (g * b, g * a),
    "divide": lambda g, a, b, y: (g / b, -g * a / (b * b)),
    "power": _power_grads,
    "maximum": lambda g, a, b, y: (g * (a >= b), g * (a < b)),
    "minimum": lambda g, a, b, y: (g * (a <= b), g * (a > b)),
    "mod": lambda g, a, b, y: (g, -g * np.floor_divide(a, b)),
    "floor_divide": lambda g, a, b, y: (np.zeros_like(g), np.zeros_like(g)),
}


class FloorMod(Binary):
    def to_onnx(self, ctx, ins, outs):
        if ctx.dtype_of(ins[0]).startswith("float"):
            # Python's modulo (sign of the divisor): x - floor(x / y) * y.
            q = ctx.node("Floor", [ctx.node("Div", ins)[0]])[0]
            ctx.node("Sub", [ins[0], ctx.node("Mul", [q, ins[1]])[0]], outs)
        else:
            ctx.node("Mod", ins, outs, fmod=0)


class FloorDivide(Binary):
    def to_onnx(self, ctx, ins, outs):
        if ctx.dtype_of(ins[0]).startswith("float"):
            ctx.node("Floor", [ctx.node("Div", ins)[0]], outs)
        else:
            # Integer Div truncates; (x - x mod y) / y is exact and floors.
            rem = ctx.node("Mod", ins, fmod=0)[0]
            ctx.node("Div", [ctx.node("Sub", [ins[0], rem])[0], ins[1]], outs)


class TruncateDivide(Binary):
    """ONNX's (and C's) ``Div`` on integers, the quotient rounded toward zero, which the importer
    maps; Keras has no such op, so it has no public function. Integers only: no gradient."""

    def __init__(self):
        super().__init__("truncate_divide", self._divide, "Div")
        self.differentiable = False

    def infer(self, specs, **attrs):
        if not all(np.issubdtype(np.dtype(s.dtype), np.integer) for s in specs):
            raise ValueError(f"`truncate_divide` takes integers. Received: {specs[0].dtype} and {specs[1].dtype}.")
        return super().infer(specs, **attrs)

    @staticmethod
    def _divide(a, b):
        # floor division, one up where the quotient is negative and inexact
        quotient = np.floor_divide(a, b)
        return quotient + ((quotient < 0) & (quotient * b != a))


ADD = Binary("add", np.add, "Add")
SUBTRACT = Binary("subtract", np.subtract, "Sub")
MULTIPLY = Binary("multiply", np.multiply, "Mul")
DIVIDE = Binary("divide", np.divide, "Div")
POWER = Binary("power", np.power, "Pow")
MAXIMUM = Binary("maximum", np.maximum, "Max")
MINIMUM = Binary("minimum", np.minimum, "Min")
MOD = FloorMod("mod", np.mod, "Mod")
FLOOR_DIVIDE = FloorDivide("floor_divide", np.floor_divide, "Div")
TRUNCATE_DIVIDE = TruncateDivide()
LESS = Binary("less", np.less, "Less", boolean=True)
LESS_EQUAL = Binary("less_equal", np.less_equal, "LessOrEqual", boolean=True)
GREATER = Binary("greater", np.greater, "Greater", boolean=True)
GREATER_EQUAL = Binary("greater_equal", np.greater_equal, "GreaterOrEqual", boolean=True)
EQUAL = Binary("equal", np.equal, "Equal", boolean=True)
LOGICAL_AND = Binary("logical_and", np.logical_and, "And", boolean=True)
LOGICAL_OR = Binary("logical_or", np.logical_or, "Or", boolean=True)
LOGICAL_XOR = Binary("logical_xor", np.logical_xor, "Xor", boolean=True)


class NotEqual(Binary):
    def to_onnx(self, ctx, ins, outs):
        ctx.node("Not", ctx.node("Equal", ins), outs)


NOT_EQUAL = NotEqual("not_equal", np.not_equal, "Equal", boolean=True)


def _is_tensorlike(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _dtype_of(x):
    if _is_tensorlike(x):
        return standardize_dtype(x.dtype) if not isinstance(x, SymbolicTensor) else x.dtype
    return None


def promote(a, b, to_float: bool = False):
    """Bring two operands to one dtype, Keras-style; Python scalars are weakly typed."""
    da, db = _dtype_of(a), _dtype_of(b)
    if da is None and db is None:
        a, b = np.asarray(a), np.asarray(b)
        da, db = standardize_dtype(a.dtype), standardize_dtype(b.dtype)
        if da == "float64" or db == "float64":
            da = db = "float32"
    if da is None:
        da = _scalar_dtype(a, db)
    if db is None:
        db = _scalar_dtype(b, da)
    if da == db:
        dtype = da
    elif is_float(da) and not is_float(db):
        dtype = da
    elif is_float(db) and not is_float(da):
        dtype = db
    else:
        dtype = result_dtype(da, db)
    if to_float and not is_float(dtype):
        dtype = "float32"
    return _as(a, dtype), _as(b, dtype), dtype


def _scalar_dtype(scalar, other: str) -> str:
    if isinstance(scalar, bool):
        return other
    if isinstance(scalar, float) and not is_float(other):
        return "float32"
    return other


def _as(x, dtype: str):
    if isinstance(x, SymbolicTensor):
        return x if x.dtype == dtype else cast(x, dtype)
    if _is_tensorlike(x) and not isinstance(x, np.ndarray):
        if standardize_dtype(x.dtype) == dtype:
            return x
        x = np.asarray(x)
    return np.asarray(x, dtype=dtype)


def _binary(prim: Binary, a, b, to_float: bool = False):
    a, b, _ = promote(a, b, to_float)
    return apply(prim, [a, b])[0]


@top_level_op("Add")
def add(x1, x2):
    """Elementwise ``x1 + x2`` with broadcasting."""
    return _binary(ADD, x1, x2)


@top_level_op("Subtract")
def subtract(x1, x2):
    return _binary(SUBTRACT, x1, x2)


@top_level_op("Multiply")
def multiply(x1, x2):
    return _binary(MULTIPLY, x1, x2)


@top_level_op("Divide")
def divide(x1, x2):
    """True division; integer operands give float32, as in Keras."""
    return _binary(DIVIDE, x1, x2, to_float=True)


@top_level_op("TrueDivide")
def true_divide(x1, x2):
    return _binary(DIVIDE, x1, x2, to_float=True)


@top_level_op("Power")
def power(x1, x2):
    return _binary(POWER, x1, x2)


@top_level_op("Maximum")
def maximum(x1, x2):
    return _binary(MAXIMUM, x1, x2)


@top_level_op("Minimum")
def minimum(x1, x2):
    return _binary(MINIMUM, x1, x2)


@top_level_op("Mod")
def mod(x1, x2):
    return _binary(MOD, x1, x2)


@top_level_op("FloorDivide")
def floor_divide(x1, x2):
    return _binary(FLOOR_DIVIDE, x1, x2)


def truncate_divide(x1, x2):
    """Integer ``x1 / x2`` rounded toward zero, as ONNX's ``Div`` on integers (the importer's; not a Keras op)."""
    return _binary(TRUNCATE_DIVIDE, x1, x2)


@top_level_op("Less")
def less(x1, x2):
    return _binary(LESS, x1, x2)


@top_level_op("LessEqual")
def less_equal(x1, x2):
    return _binary(LESS_EQUAL, x1, x2)


@top_level_op("Greater")
def greater(x1, x2):
    return _binary(GREATER, x1, x2)


@top_level_op("GreaterEqual")
def greater_equal(x1, x2):
    return _binary(GREATER_EQUAL, x1, x2)


@top_level_op("Equal")
def equal(x1, x2):
    return _binary(EQUAL, x1, x2)


@top_level_op("NotEqual")
def not_equal(x1, x2):
    return _binary(NOT_EQUAL, x1, x2)


@top_level_op("LogicalAnd")
def logical_and(x1, x2):
    return apply(LOGICAL_AND, [cast(x1, "bool"), cast(x2, "bool")])[0]


@top_level_op("LogicalOr")
def logical_or(x1, x2):
    return apply(LOGICAL_OR, [cast(x1, "bool"), cast(x2, "bool")])[0]


@top_level_op("LogicalXor")
def logical_xor(x1, x2):
    return apply(LOGICAL_XOR, [cast(x1, "bool"), cast(x2, "bool")])[0]


# ---------------------------------------------------------------------------------------
# Unary


def _erf(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def _sigmoid(x):
    # Stable for large |x|: exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def _gelu(x, approximate):
    if approximate:
        c = np.asarray(math.sqrt(2.0 / math.pi), x.dtype)
        return (0.5 * x * (1.0 + np.tanh(c * (x + np.asarray(0.044715, x.dtype) * x**3)))).astype(x.dtype)
    return (0.5 * x * (1.0 + _erf(x / np.asarray(math.sqrt(2.0), x.dtype)))).astype(x.dtype)


def _gelu_grad(x, y, approximate):
    if approximate:
        c = math.sqrt(2.0 / math.pi)
        inner = c * (x + 0.044715 * x**3)
        t = np.tanh(inner)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    cdf = 0.5 * (1.0 + _erf(x / np.asarray(math.sqrt(2.0), x.dtype)))
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class Unary(Primitive):
    """``out = fn(x)``; ``onnx`` is the op type (with ``onnx_attrs``) or a lowering function;
    ``grad``, ``dy/dx`` from ``(x, y)``, unless the primitive's rule is in ``_UNARY_GRADS``."""

    elementwise = True

    def __init__(
        self, name: str, fn, onnx, float_only: bool = False, out_dtype: str | None = None, grad=None, **onnx_attrs
    ):
        self.name = name
        self.fn = fn
        self.grad = grad
        self.onnx = onnx
        self.onnx_attrs = onnx_attrs
        self.float_only = float_only
        self.out_dtype = out_dtype
        self.differentiable = out_dtype != "bool"  # logical_not has no gradient

    def infer(self, specs, **attrs):
        (x,) = specs
        if self.float_only and not is_float(x.dtype):
            raise ValueError(f"`{self.name}` needs a floating-point input. Received: dtype={x.dtype}.")
        return [TensorSpec(x.shape, self.out_dtype or x.dtype)]

    def forward(self, x, **attrs):
        out = self.fn(x, **attrs)
        dtype = self.out_dtype or x.dtype
        return out if out.dtype == dtype else out.astype(dtype)

    def vjp(self, cotangents, inputs, outputs, **attrs):
        (g,), (x,), (y,) = cotangents, inputs, outputs
        rule = self.grad or _UNARY_GRADS.get(self.name)
        if rule is None or not is_differentiable(x) or not is_differentiable(y):
            return [None]
        return [(g * rule(x, y, **attrs)).astype(x.dtype, copy=False)]

    def to_onnx(self, ctx, ins, outs, **attrs):
        fallback = _FLOAT64_LOWERINGS.get(self.name)
        if fallback is not None and ctx.dtype_of(ins[0]) == "float64":
            fallback(ctx, ins[0], outs, **attrs)
        elif callable(self.onnx):
            self.onnx(ctx, ins, outs, **attrs)
        else:
            ctx.node(self.onnx, ins, outs, **self.onnx_attrs, **attrs)


# ONNX Runtime's CPU provider has no float64 kernels for Erf, Elu, Selu, LeakyRelu, Softplus,
# Softsign and HardSigmoid: float64 inputs are lowered with ops that have them.


def _erf_node(ctx, x, outs=1, dtype=None):
    if (dtype or ctx.dtype_of(x)) != "float64":
        return ctx.node("Erf", [x], outs)
    erf = ctx.node("Erf", ctx.node("Cast", [x], to=ctx.onnx_dtype("float32")))
    return ctx.node("Cast", erf, outs, to=ctx.onnx_dtype("float64"))


def _c(ctx, x, value):
    return ctx.const(np.asarray(value, ctx.dtype_of(x)))


def _elu_f64(ctx, x, outs, alpha=1.0, scale=None):
    expm1 = ctx.node("Sub", [ctx.node("Exp", [ctx.node("Min", [x, _c(ctx, x, 0)])[0]])[0], _c(ctx, x, 1)])[0]
    neg = ctx.node("Mul", [expm1, _c(ctx, x, alpha)])[0]
    positive = ctx.node("Greater", [x, _c(ctx, x, 0)])[0]
    if scale is None:
        return ctx.node("Where", [positive, x, neg], outs)
    return ctx.node("Mul", [ctx.node("Where", [positive, x, neg])[0], _c(ctx, x, scale)], outs)


def _softplus_f64(ctx, x, outs):
    # max(x, 0) + log(1 + exp(-|x|))
    e = ctx.node("Exp", [ctx.node("Neg", [ctx.node("Abs", [x])[0]])[0]])[0]
    log = ctx.node("Log", [ctx.node("Add", [e, _c(ctx, x, 1)])[0]])[0]
    return ctx.node("Add", [ctx.node("Max", [x, _c(ctx, x, 0)])[0], log], outs)


_FLOAT64_LOWERINGS = {
    "erf": lambda ctx, x, outs: _erf_node(ctx, x, outs),
    "elu": lambda ctx, x, outs, alpha: _elu_f64(ctx, x, outs, alpha),
    "selu": lambda ctx, x, outs: _elu_f64(ctx, x, outs, SELU_ALPHA, SELU_SCALE),
    "leaky_relu": lambda ctx, x, outs, negative_slope: ctx.node(
        "Where",
        [ctx.node("Less", [x, _c(ctx, x, 0)])[0], ctx.node("Mul", [x, _c(ctx, x, negative_slope)])[0], x],
        outs,
    ),
    "softplus": _softplus_f64,
    "softsign": lambda ctx, x, outs: ctx.node(
        "Div", [x, ctx.node("Add", [ctx.node("Abs", [x])[0], _c(ctx, x, 1)])[0]], outs
    ),
    "hard_sigmoid": lambda ctx, x, outs: ctx.node(
        "Clip",
        [ctx.node("Add", [ctx.node("Div", [x, _c(ctx, x, 6)])[0], _c(ctx, x, 0.5)])[0], _c(ctx, x, 0), _c(ctx, x, 1)],
        outs,
    ),
}


def _gelu_onnx(ctx, ins, outs, approximate):
    if ctx.opset >= 20 and ctx.dtype_of(ins[0]) != "float64":  # ORT expands a float64 Gelu to Erf
        ctx.node("Gelu", ins, outs, approximate="tanh" if approximate else "none")
        return
    x = ins[0]
    dt = ctx.dtype_of(x)
    half = ctx.const(np.asarray(0.5, dt))
    if approximate:
        cube = ctx.node("Mul", [x, ctx.node("Mul", [x, x])[0]])[0]
        inner = ctx.node("Add", [x, ctx.node("Mul", [cube, ctx.const(np.asarray(0.044715, dt))])[0]])[0]
        t = ctx.node("Tanh", [ctx.node("Mul", [inner, ctx.const(np.asarray(math.sqrt(2 / math.pi), dt))])[0]])[0]
    else:
        t = _erf_node(ctx, ctx.node("Div", [x, ctx.const(np.asarray(math.sqrt(2.0), dt))])[0], dtype=dt)[0]
    one_plus = ctx.node("Add", [t, ctx.const(np.asarray(1.0, dt))])[0]
    ctx.node("Mul", [ctx.node("Mul", [x, half])[0], one_plus], outs)


def _square_onnx(ctx, ins, outs):
    ctx.node("Mul", [ins[0], ins[0]], outs)


def _relu6_onnx(ctx, ins, outs):
    dt = ctx.dtype_of(ins[0])
    ctx.node("Clip", [ins[0], ctx.const(np.asarray(0, dt)), ctx.const(np.asarray(6, dt))], outs)


def _relu_onnx(ctx, ins, outs):
    dt = ctx.dtype_of(ins[0])
    if is_float(dt) or dt in ("int8", "int32"):
        ctx.node("Relu", ins, outs)
    else:
        # ONNX Runtime has no Relu kernel for the other integer types.
        ctx.node("Max", [ins[0], ctx.const(np.asarray(0, dt))], outs)


def _leaky_relu(x, negative_slope):
    return np.where(x >= 0, x, x * np.asarray(negative_slope, x.dtype))


def _elu(x, alpha):
    return np.where(x > 0, x, np.asarray(alpha, x.dtype) * np.expm1(np.minimum(x, 0)))


def _leaky_relu_onnx(ctx, ins, outs, negative_slope):
    ctx.node("LeakyRelu", ins, outs, alpha=float(negative_slope))


def _elu_onnx(ctx, ins, outs, alpha):
    ctx.node("Elu", ins, outs, alpha=float(alpha))


def _reciprocal(x):
    return np.asarray(1, x.dtype) / x


NEGATIVE = Unary("negative", np.negative, "Neg")
ABS = Unary("abs", np.abs, "Abs")
SQUARE = Unary("square", np.square, _square_onnx)
SQRT = Unary("sqrt", np.sqrt, "Sqrt", float_only=True)
EXP = Unary("exp", np.exp, "Exp", float_only=True)
LOG = Unary("log", np.log, "Log", float_only=True)
TANH = Unary("tanh", np.tanh, "Tanh", float_only=True)
SIGMOID = Unary("sigmoid", _sigmoid, "Sigmoid", float_only=True)


class _Zeros(dict):
    """A 0-d zero array per dtype, made on first use: the cheapest second operand of a ReLU's
    ``np.maximum`` (a Python 0 or a NumPy scalar costs 0.2-1 µs more per call at batch 1)."""

    def __missing__(self, dtype):
        zero = self[dtype] = np.zeros((), dtype)
        return zero


ZEROS = _Zeros()
RELU = Unary("relu", lambda x: np.maximum(x, ZEROS[x.dtype]), _relu_onnx)
RELU6 = Unary("relu6", lambda x: np.clip(x, np.asarray(0, x.dtype), np.asarray(6, x.dtype)), _relu6_onnx)
SOFTPLUS = Unary("softplus", _softplus, "Softplus", float_only=True)
SOFTSIGN = Unary("softsign", lambda x: x / (np.asarray(1, x.dtype) + np.abs(x)), "Softsign", float_only=True)
SELU = Unary(
    "selu",
    lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "Selu",
    float_only=True,
    alpha=SELU_ALPHA,
    gamma=SELU_SCALE,
)
HARD_SIGMOID = Unary(
    "hard_sigmoid",
    lambda x: np.clip(x / np.asarray(6, x.dtype) + np.asarray(0.5, x.dtype), 0, 1),
    "HardSigmoid",
    float_only=True,
    alpha=1.0 / 6.0,
    beta=0.5,
)
ERF = Unary("erf", _erf, "Erf", float_only=True)
GELU = Unary("gelu", _gelu, _gelu_onnx, float_only=True)
LEAKY_RELU = Unary("leaky_relu", _leaky_relu, _leaky_relu_onnx, float_only=True)
ELU = Unary("elu", _elu, _elu_onnx, float_only=True)
FLOOR = Unary("floor", np.floor, "Floor", float_only=True)
CEIL = Unary("ceil", np.ceil, "Ceil", float_only=True)
ROUND = Unary("round", np.round, "Round", float_only=True)
SIGN = Unary("sign", np.sign, "Sign")
RECIPROCAL = Unary("reciprocal", _reciprocal, "Reciprocal", float_only=True)
SIN = Unary("sin", np.sin, "Sin", float_only=True)
COS = Unary("cos", np.cos, "Cos", float_only=True)
LOGICAL_NOT = Unary("logical_not", np.logical_not, "Not", out_dtype="bool")

# dy/dx from (x, y, **attrs) for each differentiable unary primitive.
_UNARY_GRADS = {
    "negative": lambda x, y: -np.ones_like(x),
    "abs": lambda x, y: np.sign(x),
    "square": lambda x, y: 2 * x,
    "sqrt": lambda x, y: 0.5 / y,
    "exp": lambda x, y: y,
    "log": lambda x, y: 1 / x,
    "tanh": lambda x, y: 1 - y * y,
    "sigmoid": lambda x, y: y * (1 - y),
    "relu": lambda x, y: x > 0,  # g * mask promotes to g's dtype: no float copy of the mask
    "relu6": lambda x, y: ((x > 0) & (x < 6)).astype(x.dtype),
    "softplus": lambda x, y: _sigmoid(x),
    "softsign": lambda x, y: 1 / np.square(1 + np.abs(x)),
    "selu": lambda x, y: np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0))),
    "hard_sigmoid": lambda x, y: ((x > -3) & (x < 3)) / np.asarray(6, x.dtype),
    "erf": lambda x, y: 2 / math.sqrt(math.pi) * np.exp(-x * x),
    "gelu": _gelu_grad,
    "leaky_relu": lambda x, y, negative_slope: np.where(x >= 0, 1, negative_slope).astype(x.dtype),
    "elu": lambda x, y, alpha: np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))),
    "floor": lambda x, y: np.zeros_like(x),
    "ceil": lambda x, y: np.zeros_like(x),
    "round": lambda x, y: np.zeros_like(x),
    "sign": lambda x, y: np.zeros_like(x),
    "reciprocal": lambda x, y: -y * y,
    "sin": lambda x, y: np.cos(x),
    "cos": lambda x, y: -np.sin(x),
}


def _unary(prim: Unary, x, **attrs):
    if not _is_tensorlike(x):
        x = np.asarray(x, dtype="float32" if isinstance(x, float) else None)
    if prim.float_only and not is_float(_dtype_of(x)):
        x = _as(x, "float32")
    return apply(prim, [x], **attrs)[0]


def _export_unary(fn_name: str, class_name: str, prim: Unary, doc: str):
    @top_level_op(class_name)
    def fn(x):
        return _unary(prim, x)

    fn.__name__ = fn.__qualname__ = fn_name
    fn.__doc__ = doc
    return fn


negative = _export_unary("negative", "Negative", NEGATIVE, "Elementwise ``-x``.")
abs = _export_unary("abs", "Absolute", ABS, "Elementwise ``|x|``.")  # noqa: A001 - Keras' name
absolute = abs
square = _export_unary("square", "Square", SQUARE, "Elementwise ``x * x``.")
sqrt = _export_unary("sqrt", "Sqrt", SQRT, "Elementwise square root.")
exp = _export_unary("exp", "Exp", EXP, "Elementwise ``e**x``.")
log = _export_unary("log", "Log", LOG, "Elementwise natural logarithm.")
tanh = _export_unary("tanh", "Tanh", TANH, "Hyperbolic tangent.")
sigmoid = _export_unary("sigmoid", "Sigmoid", SIGMOID, "``1 / (1 + exp(-x))``.")
relu = _export_unary("relu", "Relu", RELU, "``max(x, 0)``.")
relu6 = _export_unary("relu6", "Relu6", RELU6, "``min(max(x, 0), 6)``.")
softplus = _export_unary("softplus", "Softplus", SOFTPLUS, "``log(1 + exp(x))``.")
softsign = _export_unary("softsign", "Softsign", SOFTSIGN, "``x / (1 + |x|)``.")
selu = _export_unary("selu", "Selu", SELU, "Scaled ELU with Keras' constants.")
hard_sigmoid = _export_unary("hard_sigmoid", "HardSigmoid", HARD_SIGMOID, "``clip(x / 6 + 0.5, 0, 1)`` (Keras 3).")
erf = _export_unary("erf", "Erf", ERF, "The error function.")
floor = _export_unary("floor", "Floor", FLOOR, "Elementwise floor.")
ceil = _export_unary("ceil", "Ceil", CEIL, "Elementwise ceiling.")
round = _export_unary("round", "Round", ROUND, "Round half to even.")  # noqa: A001 - Keras' name
sign = _export_unary("sign", "Sign", SIGN, "Elementwise sign.")
reciprocal = _export_unary("reciprocal", "Reciprocal", RECIPROCAL, "Elementwise ``1 / x``.")
sin = _export_unary("sin", "Sin", SIN, "Elementwise sine.")
cos = _export_unary("cos", "Cos", COS, "Elementwise cosine.")


@top_level_op("LogicalNot")
def logical_not(x):
    return apply(LOGICAL_NOT, [cast(x, "bool")])[0]


@top_level_op("Gelu")
def gelu(x, approximate: bool = True):
    """Gaussian error linear unit (``approximate=True``: the tanh form, Keras' ops default)."""
    return _unary(GELU, x, approximate=bool(approximate))


@top_level_op("LeakyRelu")
def leaky_relu(x, negative_slope: float = 0.2):
    return _unary(LEAKY_RELU, x, negative_slope=float(negative_slope))


@top_level_op("Elu")
def elu(x, alpha: float = 1.0):
    return _unary(ELU, x, alpha=float(alpha))


@top_level_op("Silu")
def silu(x):
    """``x * sigmoid(x)``."""
    return multiply(x, sigmoid(x))


swish = silu


# ---------------------------------------------------------------------------------------
# Cast


class Cast(Primitive):
    elementwise = True
    name = "cast"

    def infer(self, specs, dtype):
        return [TensorSpec(specs[0].shape, dtype)]

    def forward(self, x, dtype):
        return x.astype(dtype)

    def vjp(self, cotangents, inputs, outputs, dtype):
        (g,), (x,) = cotangents, inputs
        if not is_differentiable(x) or not is_differentiable(outputs[0]):
            return [None]
        return [g.astype(x.dtype)]

    def to_onnx(self, ctx, ins, outs, dtype):
        ctx.node("Cast", ins, outs, to=ctx.onnx_dtype(dtype))


CAST = Cast()


@top_level_op("Cast")
def cast(x, dtype):
    """``x`` converted to ``dtype`` (a no-op when it already has it)."""
    dtype = standardize_dtype(dtype)
    if not _is_tensorlike(x):
        return np.asarray(x, dtype=dtype)
    if _dtype_of(x) == dtype:
        return x
    return apply(CAST, [x], dtype=dtype)[0]
