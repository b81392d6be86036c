"""EinsumDense: ``activation(einsum(equation, inputs, kernel) + bias)``, Keras' weight layout.

The contraction is written as Transpose/Reshape/MatMul (:func:`einsum_matmul`) wherever the
shapes allow it, so the NumPy executor runs BLAS and the ONNX graph gets ``MatMul`` nodes whose
batch and sequence dims stay dynamic (reshapes copy them with ``0``). Other equations fall back
to ``ops.einsum`` (ONNX ``Einsum``).
"""

from __future__ import annotations

import contextlib
import math
import re
import string

from irtool import activations, constraints, initializers, ops, regularizers
from irtool.layers import layer as _layer_module
from irtool.layers.input_spec import InputSpec
from irtool.layers.layer import Layer


@contextlib.contextmanager
def weight_scope(layer):
    """Weights created inside get paths under ``layer``'s, as inside Keras' ``name_scope``
    (a sublayer built in its parent's ``build`` gets ``parent/sublayer/kernel``)."""
    names = _layer_module._paths.names
    if names and names[-1] == layer.name:
        yield
        return
    names.append(layer.name)
    try:
        yield
    finally:
        names.pop()


def build_sublayer(parent, sublayer, input_shape) -> None:
    """Build ``sublayer`` now, its weights named under ``parent`` (Keras' nested paths)."""
    with weight_scope(parent), weight_scope(sublayer):
        sublayer.build(input_shape)
        sublayer.built = True


# ---------------------------------------------------------------------------------------
# Two-operand einsum as MatMul


def einsum_matmul(equation: str, x, y):
    """``ops.einsum(equation, x, y)`` as Transpose/Reshape/MatMul where possible.

    Letters of both operands and the output are matmul batch dims, letters of both operands
    only are contracted, the others are the free dims of one side. Free dims of ``x`` before
    its last stay leading dims of the product (so dynamic batch/sequence dims are never merged);
    merging several contracted (or ``y``-free) letters needs their sizes known. Anything else
    (repeated letters, summed-out letters, unknown merged sizes) uses ``ops.einsum``.
    """
    lhs, out = equation.split("->")
    a, b = lhs.split(",")
    plan = _plan(a, b, out, x, y)
    if plan is None or plan[-1] != list(out):
        swapped = _plan(b, a, out, y, x)
        if swapped is not None and (plan is None or swapped[-1] == list(out)):
            a, b, x, y, plan = b, a, y, x, swapped
    if plan is None:
        return ops.einsum(equation, x, y)
    batch, lfree, contr, rfree, sizes, natural = plan
    nb, ne = len(batch), max(len(lfree) - 1, 0)
    xt = _permute(x, a, batch + lfree + contr)
    yt = _permute(y, b, batch + contr + rfree)
    # x: (batch..., leading free dims..., M, K); y: (batch..., K, N). None keeps a dim in place.
    if not lfree:
        xt = ops.reshape(xt, [None] * nb + [1, math.prod(sizes[c] for c in contr)])
    elif len(contr) != 1:
        xt = ops.reshape(xt, [None] * (nb + len(lfree)) + [math.prod(sizes[c] for c in contr)])
    if len(contr) != 1 or len(rfree) != 1:
        k = None if len(contr) == 1 else math.prod(sizes[c] for c in contr)
        n = math.prod(sizes[c] for c in rfree) if len(rfree) != 1 else None if len(contr) == 1 else -1
        yt = ops.reshape(yt, [None] * nb + [k, n])
    if nb and ne:
        yt = ops.expand_dims(yt, list(range(nb, nb + ne)))
    z = ops.matmul(xt, yt)
    if len(rfree) != 1 or not lfree:
        z = ops.reshape(z, [None] * (nb + len(lfree)) + [sizes[c] for c in rfree])
    return _permute(z, "".join(natural), list(out))


def _plan(a: str, b: str, out: str, x, y):
    """Letter groups of ``x @ y`` (batch, x-free, contracted, y-free), the sizes by letter and
    the product's natural output order; None when the equation is not a plain product."""
    if len(set(a)) != len(a) or len(set(b)) != len(b) or len(set(out)) != len(out):
        return None
    if any(c not in a and c not in b for c in out):
        return None
    if any(c not in out and c not in b for c in a) or any(c not in out and c not in a for c in b):
        return None
    batch = [c for c in out if c in a and c in b]
    lfree = [c for c in out if c in a and c not in b]
    rfree = [c for c in out if c in b and c not in a]
    contr = [c for c in a if c in b and c not in out]
    sizes = {}
    for term, t in ((a, x), (b, y)):
        for c, d in zip(term, t.shape):
            if sizes.get(c) is None:
                sizes[c] = d
    needs_known = (contr if len(contr) != 1 or not lfree else []) + (rfree if len(rfree) != 1 or not lfree else [])
    if any(sizes[c] is None for c in needs_known):
        return None
    return batch, lfree, contr, rfree, sizes, batch + lfree + rfree


def _permute(t, have: str, want):
    perm = [have.index(c) for c in want]
    return t if perm == list(range(len(perm))) else ops.transpose(t, perm)


# ---------------------------------------------------------------------------------------
# Equations with ellipses and Keras' shape analysis


def expand_ellipsis(equation: str, ndim: int) -> str:
    """``...b,bc->...c`` for a rank-3 input -> ``deb,bc->dec`` (fresh letters for ``...``)."""
    if "..." not in equation:
        return equation
    lhs, out = equation.split("->")
    a, b = lhs.split(",")
    n = ndim - len(a.replace("...", ""))
    fresh = "".join(c for c in string.ascii_lowercase if c not in equation)[: max(n, 0)]
    return f"{a.replace('...', fresh)},{b}->{out.replace('...', fresh)}"


def analyze_einsum_string(equation, bias_axes, input_shape, output_shape):
    """Keras' ``_analyze_einsum_string``: kernel shape, bias shape, full output shape and the
    kernel's input and output axes."""
    dotted = re.sub(r"\.\.\.", "0", equation)
    for pattern, left in (
        ("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", False),
        ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", True),
        ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", False),
    ):
        match = re.match(pattern, dotted)
        if match:
            return _analyze_split_string(match, bias_axes, input_shape, output_shape, left)
    raise ValueError(
        f"Invalid einsum equation '{equation}'. Equations must be in the form "
        "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...."
    )


def _analyze_split_string(match, bias_axes, input_shape, output_shape, left_elided):
    input_spec, weight_spec, output_spec = match.group(1), match.group(2), match.group(3)
    input_shape = tuple(input_shape)
    elided = len(input_shape) - len(input_spec)
    output_shape = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    output_shape.insert(0, input_shape[0])
    if elided > 0 and left_elided:
        for i in range(1, elided):
            output_shape.insert(1, input_shape[i])
    elif elided > 0:
        for i in range(len(input_shape) - elided, len(input_shape)):
            output_shape.append(input_shape[i])
    if left_elided:
        input_dim_map = {dim: (i + elided) - len(input_shape) for i, dim in enumerate(input_spec)}
        output_dim_map = {dim: i + elided for i, dim in enumerate(output_spec)}
    else:
        input_dim_map = {dim: i for i, dim in enumerate(input_spec)}
        output_dim_map = {dim: i for i, dim in enumerate(output_spec)}
    for dim in input_spec:
        at_input = input_shape[input_dim_map[dim]]
        if dim in output_dim_map:
            at_output = output_shape[output_dim_map[dim]]
            if at_output is not None and at_output != at_input:
                raise ValueError(
                    f"Input shape and output shape do not match at shared dimension '{dim}'. Input shape is "
                    f"{at_input}, and output shape is {output_shape[output_dim_map[dim]]}."
                )
    for dim in output_spec:
        if dim not in input_spec and dim not in weight_spec:
            raise ValueError(
                f"Dimension '{dim}' was specified in the output '{output_spec}' but has no corresponding dim in the "
                f"input spec '{input_spec}' or weight spec '{output_spec}'"
            )
    weight_shape, input_axes, output_axes = [], [], []
    for i, dim in enumerate(weight_spec):
        if dim in output_dim_map:
            weight_shape.append(output_shape[output_dim_map[dim]])
            output_axes.append(i)
        elif dim in input_dim_map:
            weight_shape.append(input_shape[input_dim_map[dim]])
            input_axes.append(i)
        else:
            raise ValueError(
                f"Weight dimension '{dim}' did not have a match in either the input spec '{input_spec}' or the "
                f"output spec '{output_spec}'. For this layer, the weight must be fully specified."
            )
    bias_shape = None
    if bias_axes is not None:
        num_left_elided = elided if left_elided else 0
        idx_map = {char: output_shape[i + num_left_elided] for i, char in enumerate(output_spec)}
        for char in bias_axes:
            if char not in output_spec:
                raise ValueError(
                    f"Bias dimension '{char}' was requested, but is not part of the output spec '{output_spec}'"
                )
        first = min(output_spec.find(char) for char in bias_axes)
        bias_shape = [idx_map[char] if char in bias_axes else 1 for char in output_spec[first:]]
        if not left_elided:
            bias_shape.extend([1] * elided)
    return weight_shape, bias_shape, output_shape, input_axes, output_axes


def _with_fans(initializer, fan_in: int, fan_out: int):
    """A VarianceScaling initializer drawing with Keras' EinsumDense fans (input/output axes)."""
    if not isinstance(initializer, initializers.VarianceScaling):
        return initializer

    def init(shape, dtype=None):
        return initializer((fan_in, fan_out), dtype=dtype).reshape(shape)

    return init


class EinsumDense(Layer):
    """A dense layer whose contraction is an einsum ``equation`` (Keras 3 arguments and weights).

    >>> import numpy as np
    >>> EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d")(np.ones((2, 3, 5), "float32")).shape
    (2, 3, 4)
    """

    def __init__(
        self,
        equation,
        output_shape,
        activation=None,
        bias_axes=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        gptq_unpacked_column_size=None,
        quantization_config=None,
        **kwargs,
    ):
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if lora_rank:
            raise ValueError("EinsumDense: LoRA (`lora_rank`) is not supported by irtool.")
        if quantization_config is not None:
            raise ValueError("EinsumDense: quantization is not supported by irtool.")
        self.equation = equation
        self.partial_output_shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.lora_rank = None
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.gptq_unpacked_column_size = gptq_unpacked_column_size
        self.quantization_config = None
        self.kernel = None
        self.bias = None

    def build(self, input_shape):
        kernel_shape, bias_shape, _, input_axes, output_axes = analyze_einsum_string(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape
        )
        if any(d is None for d in kernel_shape):
            raise ValueError(
                f"EinsumDense '{self.name}': the kernel shape {tuple(kernel_shape)} has unknown dimensions; the input "
                f"dims it contracts and the `output_shape` must be known. Received: input_shape={tuple(input_shape)}"
            )
        self.input_spec = InputSpec(ndim=len(input_shape))
        fan_in = math.prod(kernel_shape[i] for i in input_axes)
        fan_out = math.prod(kernel_shape[i] for i in output_axes)
        self.kernel = self.add_weight(
            name="kernel",
            shape=tuple(kernel_shape),
            initializer=_with_fans(self.kernel_initializer, fan_in, fan_out),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if bias_shape is not None:
            self.bias = self.add_weight(
                name="bias",
                shape=tuple(bias_shape),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self._equation = expand_ellipsis(self.equation, len(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(analyze_einsum_string(self.equation, self.bias_axes, input_shape, self.partial_output_shape)[2])

    def call(self, inputs, training=None):
        equation = self._equation
        term = equation.split(",")[0]
        kernel_term = equation.split(",")[1].split("->")[0]
        for c, d in zip(kernel_term, self.kernel.shape):
            if c in term and inputs.shape[term.index(c)] not in (None, d):
                raise ValueError(
                    f"EinsumDense '{self.name}' was built for inputs with dim {d} at axis {term.index(c)} (einsum "
                    f"'{self.equation}'), but received an input of shape {tuple(inputs.shape)}."
                )
        x = einsum_matmul(equation, inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not activations.linear:
            x = self.activation(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_shape": self.partial_output_shape,
                "equation": self.equation,
                "activation": activations.serialize(self.activation),
                "bias_axes": self.bias_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "quantization_config": None,
            }
        )
        return config
