"""Convolution primitives: ``conv`` (N-d, grouped), ``depthwise_conv`` and ``conv_transpose``.

Tensors stay in Keras layout in the IR: activations follow ``data_format`` and kernels keep
Keras' shapes (``conv``: ``(k..., in/groups, out)``; ``depthwise_conv``: ``(k..., C, dm)``;
``conv_transpose``: ``(k..., out, in)``). The lowering folds each kernel into ONNX's
``(out, in/groups, k...)`` (``ConvTranspose``: ``(in, out, k...)``) initializer and, for
channels_last, wraps the node in ``Transpose``s that the layout pass cancels.

Padding follows Keras/TensorFlow: ``"same"`` puts the extra pad at the end (ONNX
``SAME_UPPER``), ``"causal"`` pads ``(k-1)*dilation`` at the start. A transposed convolution
scatters ``x[i] * w[j]`` to position ``i*stride + j*dilation``, then crops ``P`` at the start
and ``R`` at the end (a negative ``R`` appends zeros): the crops of Keras' JAX/TF semantics
(``conv_transpose_crops``), lowered as explicit ONNX ``pads``/``output_padding``.
"""

from __future__ import annotations

import numpy as np

from irtool.ir.spec import TensorSpec
from irtool.ops import fast_kernels
from irtool.ops.conv_utils import (
    _channel_axis,
    _check_bias,
    _check_operands,
    _conv_nhwc,
    _conv_nhwc_vjp,
    _emit_first,
    _finish,
    _from_last,
    _lower_conv,
    _positive,
    _spatial,
    _to_first,
    _to_last,
    _windows,
    _with_spatial,
    conv_output_length,
    conv_transpose_crops,
    conv_transpose_output_length,
    standardize_data_format,
    standardize_padding,
    standardize_tuple,
)
from irtool.ops.core import Primitive, apply
from irtool.ops.elementwise import ZEROS
from irtool.ops.operation import top_level_op

__all__ = ["conv", "conv_transpose", "depthwise_conv", "separable_conv", "Conv", "ConvTranspose", "DepthwiseConv"]

# -- primitives ---------------------------------------------------------------------------------------


class Conv(Primitive):
    """N-d grouped convolution. Inputs ``x``, ``kernel (k..., C/groups, out)``, optional ``bias (out,)``."""

    name = "conv"
    uses_fast_kernels = True  # its training kernel and input gradient (see ``fast_kernels``)
    layout_sensitive = True
    layout_inputs = (0,)

    def _kernel_shape(self, kernel, channels, groups):
        in_per_group, out = kernel[-2], kernel[-1]
        if in_per_group * groups != channels:
            raise ValueError(
                f"The number of input channels must be evenly divisible by kernel's in_channels. Received input "
                f"channels {channels} and kernel in_channels {in_per_group} (groups={groups}), kernel shape {kernel}."
            )
        if out % groups:
            raise ValueError(f"The kernel's {out} filters must be evenly divisible by groups={groups}.")
        return out

    def infer(self, specs, strides, padding, data_format, dilation_rate, groups=1, activation=None):
        if activation not in (None, "relu"):
            raise ValueError(f"`{self.name}` fuses no activation or 'relu'. Received: activation={activation!r}.")
        rank, channels = _check_operands(self.name, specs, data_format)
        x, kernel = specs[0].shape, specs[1].shape
        if len(strides) != rank - 2 or len(dilation_rate) != rank - 2:
            raise ValueError(f"`{self.name}` on input shape {x} needs {rank - 2} strides and dilation rates.")
        out_channels = self._kernel_shape(kernel, channels, groups)
        _check_bias(self.name, specs, out_channels)
        spatial = _spatial(x, data_format)
        ksize = kernel[: rank - 2]
        out = [conv_output_length(n, k, s, d, padding) for n, k, s, d in zip(spatial, ksize, strides, dilation_rate)]
        attrs = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
        _positive(self.name, spatial, out, x, kernel, attrs)
        return [TensorSpec(_with_spatial(x[0], out_channels, out, data_format), specs[0].dtype)]

    def _grouped(self, kernel, groups):
        """The kernel as a grouped conv's ``(k..., C/groups, out)`` and its number of groups."""
        return kernel, groups

    def forward(self, x, kernel, bias=None, *, strides, padding, data_format, dilation_rate, groups=1, activation=None):
        kernel, groups = self._grouped(kernel, groups)
        y = _conv_nhwc(_to_last(x, data_format), kernel, strides, padding, dilation_rate, groups)
        y = _finish(y, bias, x.dtype, data_format)
        if activation == "relu":  # fused by ``ops.fusion.fuse_relu``; y is this op's own array
            np.maximum(y, ZEROS[y.dtype], out=y)
        return y

    def training_kernel(self, attrs, rng):
        # Training runs float32 convolutions through ONNX Runtime's kernels (see ``fast_kernels``).
        forward = self.kernel(attrs)
        strides, padding, data_format = attrs["strides"], attrs["padding"], attrs["data_format"]
        dilation, groups, activation = attrs["dilation_rate"], attrs.get("groups", 1), attrs.get("activation")

        def run(x, kernel, bias=None):
            grouped, g = self._grouped(kernel, groups)
            y = fast_kernels.conv_forward(x, grouped, bias, strides, padding, data_format, dilation, g, activation)
            return forward(x, kernel, bias) if y is None else y

        return run

    vjp_uses_needs = True

    def vjp(
        self, cotangents, inputs, outputs, *, strides, padding, data_format, dilation_rate, groups=1, activation=None,
        needs=None,
    ):  # fmt: skip
        x, kernel = inputs[0], inputs[1]
        g = cotangents[0]
        if activation == "relu":  # the fused ReLU's gradient: its output is positive where its input is
            y, masked = outputs[0], np.empty_like(g)
            fast_kernels.by_halves(lambda a, b: np.multiply(g[a:b], y[a:b] > 0, out=masked[a:b]), len(g), g.size)
            g = masked
        grouped, groups = self._grouped(kernel, groups)
        want_x = needs is None or needs[0]

        def numpy_grads(with_x, input_grad=None):
            xl, gl = _to_last(x, data_format), _to_last(g, data_format)
            return _conv_nhwc_vjp(xl, grouped, gl, strides, padding, dilation_rate, groups, with_x, input_grad)

        fast_gx = None
        if want_x and groups == 1 and fast_kernels.eligible(g, grouped):
            # the input gradient on ONNX Runtime, at the same time as the kernel gradient's pieces
            fast_gx, gk = numpy_grads(
                False,
                lambda: fast_kernels.conv_input_grad(
                    g, grouped, x.shape, strides, padding, data_format, dilation_rate, 1
                ),
            )
            gx = None
            if fast_gx is None:  # a geometry ConvTranspose cannot take: NumPy's input gradient
                gx, _ = numpy_grads(True)
        else:
            gx, gk = numpy_grads(want_x)
        if fast_gx is not None:
            gx = fast_gx
        else:
            gx = None if gx is None else _from_last(gx.astype(x.dtype, copy=False), data_format)
        grads = [gx, gk.reshape(kernel.shape).astype(kernel.dtype)]
        if len(inputs) > 2:
            grads.append(_bias_grad(g, data_format, inputs[2].dtype))
        return grads

    def to_onnx(self, ctx, ins, outs, strides, padding, data_format, dilation_rate, groups=1, activation=None):
        x, kernel, *bias = ins
        nd = len(strides)
        value = ctx.constant_value(kernel)
        if value is not None:  # a weight: fold it into ONNX's (out, C/groups, k...) layout now
            value, groups = self._grouped(value, groups)
            w = ctx.const(np.transpose(value, (nd + 1, nd, *range(nd))), f"{kernel}__onnx")
            ksize = value.shape[:nd]
        elif self.name == "conv" and padding == "valid":
            w, ksize = ctx.permuted(kernel, [nd + 1, nd, *range(nd)]), (1,) * nd  # valid pads need no sizes
        else:
            ctx.fail(self, f"padding={padding!r} needs the kernel's size: pass the kernel as a weight or constant")
        b = bias[0] if bias else None
        made = _lower_conv(ctx, x, w, b, 1 if activation else outs, ksize, groups, strides, padding, data_format,
                           dilation_rate)  # fmt: skip
        if activation == "relu":
            ctx.node("Relu", made, outs)


class DepthwiseConv(Conv):
    """Depthwise convolution: ``kernel (k..., C, depth_multiplier)``, a conv with ``groups = C``."""

    name = "depthwise_conv"

    def _kernel_shape(self, kernel, channels, groups):
        if kernel[-2] != channels:
            raise ValueError(
                f"The depthwise kernel's input channels must match the input's. Received input channels "
                f"{channels} and kernel shape {kernel}."
            )
        return kernel[-2] * kernel[-1]

    def _grouped(self, kernel, groups):
        # (k..., C, dm) -> (k..., 1, C*dm): output channel c*dm + m reads input channel c.
        return kernel.reshape(*kernel.shape[:-2], 1, -1), kernel.shape[-2]


class ConvTranspose(Primitive):
    """Transposed convolution. Inputs ``x``, ``kernel (k..., out, C)``, optional ``bias (out,)``."""

    name = "conv_transpose"
    layout_sensitive = True
    layout_inputs = (0,)

    def infer(self, specs, strides, padding, output_padding, data_format, dilation_rate):
        rank, channels = _check_operands(self.name, specs, data_format)
        x, kernel = specs[0].shape, specs[1].shape
        nd = rank - 2
        if len(strides) != nd or len(dilation_rate) != nd or (output_padding is not None and len(output_padding) != nd):
            raise ValueError(f"`{self.name}` on input shape {x} needs {nd} strides, dilation rates, output paddings.")
        if kernel[-1] != channels:
            raise ValueError(
                f"The kernel's input channels (its last dim) must match the input's. Received input channels "
                f"{channels} and kernel shape {kernel}."
            )
        _check_bias(self.name, specs, kernel[-2])
        spatial = _spatial(x, data_format)
        ops_ = output_padding or (None,) * nd
        out = [
            conv_transpose_output_length(n, k, s, d, padding, p)
            for n, k, s, d, p in zip(spatial, kernel[:nd], strides, dilation_rate, ops_)
        ]
        attrs = dict(strides=strides, padding=padding, output_padding=output_padding, dilation_rate=dilation_rate)
        _positive(self.name, spatial, out, x, kernel, attrs)
        return [TensorSpec(_with_spatial(x[0], kernel[-2], out, data_format), specs[0].dtype)]

    def forward(self, x, kernel, bias=None, *, strides, padding, output_padding, data_format, dilation_rate):
        xl = _to_last(x, data_format)
        nd = kernel.ndim - 2
        ksize, out_ch, channels = kernel.shape[:nd], kernel.shape[-2], kernel.shape[-1]
        n, spatial = xl.shape[0], xl.shape[1:-1]
        taps = int(np.prod(ksize))
        cols = (xl.reshape(-1, channels) @ kernel.reshape(taps * out_ch, channels).T).reshape(n, *spatial, taps, out_ch)
        crops = [
            conv_transpose_crops(ksize[i], strides[i], dilation_rate[i], padding, (output_padding or (None,) * nd)[i])
            for i in range(nd)
        ]
        full = [(spatial[i] - 1) * strides[i] + (ksize[i] - 1) * dilation_rate[i] + 1 for i in range(nd)]
        buf = np.zeros((n, *(f + max(0, -r) for f, (_, r) in zip(full, crops)), out_ch), dtype=cols.dtype)
        for t, index in enumerate(np.ndindex(*ksize)):
            where = tuple(
                slice(j * d, j * d + (m - 1) * s + 1, s) for j, d, m, s in zip(index, dilation_rate, spatial, strides)
            )
            buf[(slice(None), *where)] += cols[..., t, :]
        y = buf[(slice(None), *(slice(p, b - max(r, 0)) for (p, r), b in zip(crops, buf.shape[1:-1])))]
        return _finish(y, bias, x.dtype, data_format)

    def vjp(self, cotangents, inputs, outputs, *, strides, padding, output_padding, data_format, dilation_rate):
        # The forward is col2im(x @ kernel^T) then a crop, so its adjoint pads the cotangent back
        # to the scatter buffer and reads it with im2col windows: a strided convolution of it.
        x, kernel = inputs[0], inputs[1]
        g = cotangents[0]
        xl, gl = _to_last(x, data_format), _to_last(g, data_format)
        nd = kernel.ndim - 2
        ksize, out_ch, channels = kernel.shape[:nd], kernel.shape[-2], kernel.shape[-1]
        n, spatial = xl.shape[0], xl.shape[1:-1]
        taps, m = int(np.prod(ksize)), xl.shape[0] * int(np.prod(spatial))
        crops = [
            conv_transpose_crops(ksize[i], strides[i], dilation_rate[i], padding, (output_padding or (None,) * nd)[i])
            for i in range(nd)
        ]
        dtype = np.result_type(x, kernel)
        gbuf = np.pad(gl.astype(dtype, copy=False), [(0, 0), *((p, max(r, 0)) for p, r in crops), (0, 0)])
        cols = _windows(gbuf, ksize, strides, dilation_rate, spatial).reshape(m, taps * out_ch)
        kflat = kernel.reshape(taps * out_ch, channels)
        gx = (cols @ kflat).reshape(n, *spatial, channels)
        gk = (cols.T @ xl.reshape(m, channels)).reshape(kernel.shape)
        grads = [_from_last(gx.astype(x.dtype, copy=False), data_format), gk.astype(kernel.dtype, copy=False)]
        if len(inputs) > 2:
            grads.append(_bias_grad(g, data_format, inputs[2].dtype))
        return grads

    def to_onnx(self, ctx, ins, outs, strides, padding, output_padding, data_format, dilation_rate):
        x, kernel, *bias = ins
        nd = len(strides)
        value = ctx.constant_value(kernel)
        if value is None:
            ctx.fail(self, "the kernel must be a weight or constant")
        w = ctx.const(np.transpose(value, (nd + 1, nd, *range(nd))), f"{kernel}__onnx")
        ksize = value.shape[:nd]
        crops = [
            conv_transpose_crops(ksize[i], strides[i], dilation_rate[i], padding, (output_padding or (None,) * nd)[i])
            for i in range(nd)
        ]
        attrs = {
            "strides": list(strides),
            "dilations": list(dilation_rate),
            "pads": [p for p, _ in crops] + [max(r, 0) for _, r in crops],
            "output_padding": [max(-r, 0) for _, r in crops],
        }
        x = _to_first(ctx, x, data_format, nd)
        _emit_first(ctx, "ConvTranspose", x, [w, *bias], outs, data_format, nd, **attrs)


def _bias_grad(g, data_format, dtype):
    if data_format == "channels_last":
        # A vector-matrix product: 3-5x faster than a sum over several axes, and BLAS's
        # blocked accumulation rounds less than NumPy's row-by-row one.
        rows = g.reshape(-1, g.shape[-1])
        return (np.ones(rows.shape[0], rows.dtype) @ rows).astype(dtype, copy=False)
    return g.sum(axis=tuple(a for a in range(g.ndim) if a != 1)).astype(dtype, copy=False)


CONV = Conv()
DEPTHWISE_CONV = DepthwiseConv()
CONV_TRANSPOSE = ConvTranspose()


# -- public ops (keras.ops names and signatures; ``bias`` is an irtool extension) ---------------------


def _tensor(x):
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return np.asarray(x, dtype="float32")


def _standardize(inputs, kernel, strides, padding, data_format, dilation_rate, allow_causal=True):
    inputs, kernel = _tensor(inputs), _tensor(kernel)
    nd = len(inputs.shape) - 2
    if nd < 1:
        raise ValueError(f"Convolution inputs must have rank >= 3. Received input shape {tuple(inputs.shape)}.")
    return (
        inputs,
        kernel,
        dict(
            strides=standardize_tuple(strides, nd, "strides"),
            padding=standardize_padding(padding, allow_causal=allow_causal),
            data_format=standardize_data_format(data_format),
            dilation_rate=standardize_tuple(dilation_rate, nd, "dilation_rate"),
        ),
    )


def _operands(inputs, kernel, bias):
    return [inputs, kernel] + ([] if bias is None else [_tensor(bias)])


@top_level_op("Conv")
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1, *, bias=None):
    """General N-D convolution (cross-correlation), Keras' ``ops.conv``.

    ``kernel`` is ``(k..., C/groups, filters)``; ``groups`` is ``C // kernel.shape[-2]``.
    ``padding`` is ``"valid"``, ``"same"`` or (an irtool extension) ``"causal"``. The optional
    keyword ``bias (filters,)`` is added to the result (it lowers into the same ONNX Conv).
    """
    inputs, kernel, attrs = _standardize(inputs, kernel, strides, padding, data_format, dilation_rate)
    channels = inputs.shape[_channel_axis(attrs["data_format"], len(inputs.shape))]
    if channels is None:
        raise ValueError(f"The channel dimension of the inputs to `conv` should be defined. Received: {inputs.shape}.")
    in_per_group = kernel.shape[-2] if len(kernel.shape) >= 2 else None
    if not in_per_group or channels % in_per_group:
        raise ValueError(
            "The number of input channels must be evenly divisible by kernel's in_channels. Received input "
            f"channels {channels} and kernel in_channels {in_per_group}."
        )
    return apply(CONV, _operands(inputs, kernel, bias), groups=channels // in_per_group, **attrs)[0]


@top_level_op("DepthwiseConv")
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1, *, bias=None):
    """Depthwise convolution: ``kernel (k..., C, depth_multiplier)`` gives ``C * depth_multiplier``
    channels, channel ``c * depth_multiplier + m`` from input channel ``c``."""
    inputs, kernel, attrs = _standardize(inputs, kernel, strides, padding, data_format, dilation_rate)
    return apply(DEPTHWISE_CONV, _operands(inputs, kernel, bias), **attrs)[0]


@top_level_op("SeparableConv")
def separable_conv(
    inputs,
    depthwise_kernel,
    pointwise_kernel,
    strides=1,
    padding="valid",
    data_format=None,
    dilation_rate=1,
    *,
    bias=None,
):
    """Depthwise convolution followed by a pointwise (1x1) convolution, Keras' ``ops.separable_conv``."""
    x = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(x, pointwise_kernel, 1, "valid", data_format, 1, bias=bias)


@top_level_op("ConvTranspose")
def conv_transpose(
    inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None, dilation_rate=1, *, bias=None
):
    """Transposed convolution, Keras' ``ops.conv_transpose``: ``kernel (k..., filters, C)``.

    Output length per spatial dim: ``valid``: ``(n-1)*s + max(K, s)``, ``same``: ``n*s``; with
    ``output_padding=p``: ``(n-1)*s + K + p`` (valid) or ``(n-1)*s + K % 2 + p`` (same), where
    ``K = (k-1)*dilation + 1``.
    """
    inputs, kernel, attrs = _standardize(inputs, kernel, strides, padding, data_format, dilation_rate, False)
    nd = len(inputs.shape) - 2
    if output_padding is not None:
        output_padding = standardize_tuple(output_padding, nd, "output_padding", allow_zero=True)
    return apply(CONV_TRANSPOSE, _operands(inputs, kernel, bias), output_padding=output_padding, **attrs)[0]
