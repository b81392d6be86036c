"""``irtool.ops``: the op vocabulary layers are written in (Keras' ``keras.ops``).

Every function works on NumPy arrays (computing eagerly) and on symbolic tensors
(recording a primitive in the graph). Called on symbolic tensors outside any layer, an op
becomes a named node of its own (``add``, ``matmul``, ``get_item``...) that shows in
``model.operations`` and ``summary()`` but not in ``model.layers``, as in Keras 3.
"""

from irtool.ops import image, nn
from irtool.ops.adaptive_pooling import adaptive_average_pool, adaptive_max_pool
from irtool.ops.arrays import (
    broadcast_to,
    copy,
    eye,
    flip,
    fliplr,
    flipud,
    hstack,
    identity,
    linspace,
    moveaxis,
    pad,
    ravel,
    repeat,
    roll,
    slice,
    slice_update,
    stop_gradient,
    swapaxes,
    take_along_axis,
    tile,
    tri,
    vstack,
)
from irtool.ops.conv import conv, conv_transpose, depthwise_conv, separable_conv
from irtool.ops.core import Constant, Primitive, SymbolicTensor, apply, is_symbolic
from irtool.ops.elementwise import (
    abs,
    absolute,
    add,
    cast,
    ceil,
    cos,
    divide,
    elu,
    equal,
    erf,
    exp,
    floor,
    floor_divide,
    gelu,
    greater,
    greater_equal,
    hard_sigmoid,
    leaky_relu,
    less,
    less_equal,
    log,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    power,
    reciprocal,
    relu,
    relu6,
    round,
    selu,
    sigmoid,
    sign,
    silu,
    sin,
    softplus,
    softsign,
    sqrt,
    square,
    subtract,
    swish,
    tanh,
    true_divide,
)
from irtool.ops.linalg import diagonal, dot, einsum, inner, matmul, outer, tensordot, trace, tril, triu, vdot
from irtool.ops.math import (
    amax,
    amin,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctanh,
    average,
    cosh,
    count_nonzero,
    cumsum,
    deg2rad,
    divide_no_nan,
    exp2,
    expm1,
    hypot,
    isclose,
    isfinite,
    isinf,
    isnan,
    log1p,
    log2,
    log10,
    logaddexp,
    logsumexp,
    multi_hot,
    nan_to_num,
    norm,
    ptp,
    rad2deg,
    rsqrt,
    sinh,
    size,
    std,
    tan,
    trunc,
    var,
)
from irtool.ops.nn import (
    celu,
    dot_product_attention,
    glu,
    hard_shrink,
    hard_silu,
    hard_swish,
    hard_tanh,
    log_sigmoid,
    log_softmax,
    soft_shrink,
    softmax,
    sparse_plus,
    sparse_sigmoid,
    sparsemax,
    squareplus,
    tanh_shrink,
    threshold,
)
from irtool.ops.normalization import batch_normalization, layer_normalization, moments, normalize, rms_normalization
from irtool.ops.pooling import average_pool, max_pool
from irtool.ops.reduce import all, any, argmax, argmin, max, mean, min, prod, sum
from irtool.ops.rnn import gru, lstm, simple_rnn
from irtool.ops.shape import (
    arange,
    clip,
    concatenate,
    convert_to_numpy,
    convert_to_tensor,
    expand_dims,
    full,
    full_like,
    get_item,
    ndim,
    one_hot,
    ones,
    ones_like,
    reshape,
    shape,
    split,
    squeeze,
    stack,
    take,
    transpose,
    unstack,
    where,
    zeros,
    zeros_like,
)
from irtool.ops.signal import arctan2, stft
from irtool.ops.sorting import argsort, sort, top_k
from irtool.ops.variable import Variable


def _bind_operators(cls) -> None:
    """Give ``cls`` the Python operators, each recording (or computing) the matching op."""

    def binary(fn, reflected=False):
        if reflected:
            return lambda self, other: fn(other, self)
        return lambda self, other: fn(self, other)

    for name, fn in {
        "add": add,
        "sub": subtract,
        "mul": multiply,
        "truediv": true_divide,
        "floordiv": floor_divide,
        "mod": mod,
        "pow": power,
        "matmul": matmul,
        "and": logical_and,
        "or": logical_or,
        "xor": logical_xor,
    }.items():
        setattr(cls, f"__{name}__", binary(fn))
        setattr(cls, f"__r{name}__", binary(fn, reflected=True))
    cls.__lt__ = binary(less)
    cls.__le__ = binary(less_equal)
    cls.__gt__ = binary(greater)
    cls.__ge__ = binary(greater_equal)
    cls.__ne__ = binary(not_equal)
    cls.__neg__ = negative
    cls.__pos__ = lambda self: self
    cls.__abs__ = abs
    cls.__invert__ = logical_not
    cls.__round__ = lambda self, ndigits=None: round(self)
    cls.__getitem__ = get_item
    cls.reshape = lambda self, *dims: reshape(self, dims[0] if len(dims) == 1 else dims)
    cls.squeeze = squeeze
    cls.numpy_dtype = property(lambda self: self.dtype)


_bind_operators(SymbolicTensor)
_bind_operators(Variable)
# ``==`` stays identity (tensors are hashable dict keys), as in Keras.
SymbolicTensor.__eq__ = object.__eq__
Variable.__eq__ = object.__eq__
SymbolicTensor.__array_ufunc__ = None

__all__ = [name for name in dir() if not name.startswith("_")]
