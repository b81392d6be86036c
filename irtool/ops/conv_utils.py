"""Shared pieces of the convolution primitives: Keras' argument checks, the padding and
output-length arithmetic of ``conv`` and ``conv_transpose`` (from ``conv_arithmetic``), the NumPy kernels and the
ONNX emission helpers (channels-first node between NHWC transposes, runtime ``same`` pads).
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from irtool import backend
from irtool.ir.dtypes import is_float
from irtool.ops import fast_kernels
from irtool.ops.conv_arithmetic import (  # noqa: F401 - part of this module's interface
    conv_output_length,
    conv_pads,
    conv_transpose_crops,
    conv_transpose_output_length,
    input_grad_conv,
)

# -- argument helpers (Keras' messages) --------------------------------------------------------


def standardize_data_format(data_format) -> str:
    if data_format is None:
        return backend.image_data_format()
    data_format = str(data_format).lower()
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return data_format


def standardize_tuple(value, n: int, name: str, allow_zero: bool = False) -> tuple:
    message = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(message) from None
        if len(values) != n:
            raise ValueError(message)
        try:
            values = tuple(int(v) for v in values)
        except (TypeError, ValueError):
            raise ValueError(message) from None
    bad = {v for v in values if (v < 0 if allow_zero else v <= 0)}
    if bad:
        raise ValueError(
            f"{message}, including values {bad} that do not satisfy `value {'>= 0' if allow_zero else '> 0'}`"
        )
    return values


def standardize_padding(value, allow_causal: bool = False) -> str:
    padding = str(value).lower()
    allowed = {"valid", "same", "causal"} if allow_causal else {"valid", "same"}
    if padding not in allowed:
        raise ValueError(f"The `padding` argument must be a list/tuple or one of {allowed}. Received: {padding}")
    return padding


def _channel_axis(data_format: str, rank: int) -> int:
    return rank - 1 if data_format == "channels_last" else 1


def _spatial(shape, data_format: str) -> tuple:
    return tuple(shape[1:-1] if data_format == "channels_last" else shape[2:])


def _with_spatial(batch, channels, spatial, data_format: str) -> tuple:
    if data_format == "channels_last":
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def _check_operands(name: str, specs: list, data_format: str) -> tuple:
    x, kernel = specs[0], specs[1]
    rank = len(x.shape)
    if rank < 3:
        raise ValueError(
            f"`{name}` needs inputs of rank >= 3 (batch, spatial dims, channels). Received input shape {x.shape}."
        )
    if len(kernel.shape) != rank:
        raise ValueError(
            f"Kernel shape must have the same length as input, but received kernel of shape {kernel.shape} and "
            f"input of shape {x.shape}."
        )
    if None in kernel.shape:
        raise ValueError(f"`{name}` needs a kernel of known shape. Received kernel shape {kernel.shape}.")
    if not is_float(x.dtype) or kernel.dtype != x.dtype:
        raise ValueError(
            f"`{name}` needs floating-point inputs and kernel of one dtype. Received: {x.dtype} and {kernel.dtype}."
        )
    channels = x.shape[_channel_axis(data_format, rank)]
    if channels is None:
        raise ValueError(f"The channel dimension of the inputs to `{name}` should be defined. Received: {x.shape}.")
    return rank, channels


def _check_bias(name: str, specs: list, out: int) -> None:
    if len(specs) > 2 and (tuple(specs[2].shape) != (out,) or specs[2].dtype != specs[0].dtype):
        raise ValueError(
            f"`{name}` needs a bias of shape ({out},) and dtype {specs[0].dtype}. Received: {specs[2].shape}, "
            f"{specs[2].dtype}."
        )


def _positive(name: str, spatial, out_spatial, x_shape, kernel_shape, attrs) -> None:
    for n, o in zip(spatial, out_spatial):
        if n is not None and o <= 0:
            raise ValueError(
                f"Computed output size of `{name}` would be zero or negative. Received inputs shape={x_shape}, "
                f"kernel shape={kernel_shape}, " + ", ".join(f"{k}={v}" for k, v in attrs.items()) + "."
            )


# -- NumPy kernels --------------------------------------------------------------------------------


def _windows(x, ksize, strides, dilation, out_spatial, group_first: int = 0):
    """Strided view of channels-last ``x``: ``(N, o..., k..., C)`` (or ``(G, N, o..., k..., C/G)``)."""
    st = x.strides
    nd = len(ksize)
    shape = (x.shape[0], *out_spatial, *ksize)
    strides = (st[0], *(st[1 + i] * strides[i] for i in range(nd)), *(st[1 + i] * dilation[i] for i in range(nd)))
    if group_first:
        cg = x.shape[-1] // group_first
        return as_strided(x, (group_first, *shape, cg), (st[-1] * cg, *strides, st[-1]), writeable=False)
    return as_strided(x, (*shape, x.shape[-1]), (*strides, st[-1]), writeable=False)


def _conv_nhwc(x, kernel, strides, padding, dilation, groups):
    nd = kernel.ndim - 2
    ksize = kernel.shape[:nd]
    pads = [conv_pads(x.shape[1 + i], ksize[i], strides[i], dilation[i], padding) for i in range(nd)]
    if any(p != (0, 0) for p in pads):
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_spatial = [(x.shape[1 + i] - (ksize[i] - 1) * dilation[i] - 1) // strides[i] + 1 for i in range(nd)]
    n, channels, out = x.shape[0], x.shape[-1], kernel.shape[-1]
    taps = int(np.prod(ksize))
    if groups == 1:
        cols = _windows(x, ksize, strides, dilation, out_spatial).reshape(-1, taps * channels)
        return (cols @ kernel.reshape(taps * channels, out)).reshape(n, *out_spatial, out)
    cg, og = channels // groups, out // groups
    if cg == 1:  # depthwise: accumulate over the kernel taps, vectorized over pixels and channels
        win = _windows(x, ksize, strides, dilation, out_spatial)  # a view: no im2col copy here
        w = kernel.reshape(*ksize, groups, og)
        acc = np.zeros((n, *out_spatial, groups, og), dtype=np.result_type(x, kernel))
        lead = (slice(None),) * (1 + nd)
        for tap in np.ndindex(*ksize):
            acc += win[lead + tap][..., None] * w[tap]
        return acc.reshape(n, *out_spatial, out)
    cols = _windows(x, ksize, strides, dilation, out_spatial, group_first=groups).reshape(groups, -1, taps * cg)
    w = kernel.reshape(taps, cg, groups, og).transpose(2, 0, 1, 3).reshape(groups, taps * cg, og)
    y = np.matmul(cols, w)  # (G, M, og)
    return y.transpose(1, 0, 2).reshape(n, *out_spatial, out)


def _tap_slices(tap, dilation, out_spatial, strides) -> tuple:
    """The strided slices of a padded input read by kernel tap ``tap`` (one per spatial dim)."""
    return tuple(slice(j * d, j * d + (m - 1) * s + 1, s) for j, d, m, s in zip(tap, dilation, out_spatial, strides))


def _col2im(dcols, shape, ksize, strides, dilation):
    """Adjoint of im2col: scatter-add ``dcols (N, o..., taps, C)`` into a zero array of ``shape``
    (channels-last, padded). One strided add per kernel tap, vectorized over pixels and channels."""
    out_spatial = dcols.shape[1:-2]
    buf = np.zeros(shape, dtype=dcols.dtype)
    for t, tap in enumerate(np.ndindex(*ksize)):
        buf[(slice(None), *_tap_slices(tap, dilation, out_spatial, strides))] += dcols[..., t, :]
    return buf


# The im2col matrix of a whole batch is tens of MB, and a fresh array that size costs the kernel
# zeroing every page of it first (measured: 5 of the 9 ms of a 58 MB copy). So it is made a few
# images at a time, at most this many bytes (unless one image needs more), in a buffer each thread
# keeps, and the pieces are tasks two threads share (``fast_kernels.in_parallel``).
_IM2COL_BYTES = 4 << 20
_buffers = threading.local()


def _im2col_buffer(size: int, dtype) -> np.ndarray:
    """This thread's im2col buffer, at least ``size`` elements of ``dtype`` (grown, never shrunk)."""
    buffer = getattr(_buffers, "array", None)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        buffer = _buffers.array = np.empty(size, dtype)
    return buffer[:size]


def _dense_kernel_grad(xp, gy, ksize, strides, dilation, input_grad=None):
    """``(im2col(xp)^T @ gy, input_grad())`` for a dense (one-group) convolution of the padded
    channels-last ``xp``: its kernel gradient as ``(taps * C, out)``, summed over pieces of a
    few images, and (when given) ``input_grad()``, run among the pieces' tasks."""
    n, channels, out = xp.shape[0], xp.shape[-1], gy.shape[-1]
    out_spatial = gy.shape[1:-1]
    width = int(np.prod(ksize)) * channels
    per_image = int(np.prod(out_spatial)) * width
    step = max(1, min(n, _IM2COL_BYTES // max(per_image * gy.dtype.itemsize, 1)))

    def piece(start, stop):
        def run():
            shape = (stop - start, *out_spatial, *ksize, channels)
            cols = _im2col_buffer(per_image * (stop - start), gy.dtype).reshape(shape)
            np.copyto(cols, _windows(xp[start:stop], ksize, strides, dilation, out_spatial))
            a, b = cols.reshape(-1, width), gy[start:stop].reshape(-1, out)
            part = fast_kernels.matmul_tn(a, b)
            return a.T @ b if part is None else part

        return run

    tasks = [piece(start, min(n, start + step)) for start in range(0, n, step)]
    results = fast_kernels.in_parallel(([input_grad] if input_grad else []) + tasks)
    gx = results.pop(0) if input_grad else None
    gk = results[0]
    for part in results[1:]:
        gk += part
    return gk, gx


def _conv_nhwc_vjp(x, kernel, gy, strides, padding, dilation, groups, want_x=True, input_grad=None):
    """Gradients ``(gx, gkernel)`` of ``_conv_nhwc(x, kernel, ...)`` given ``gy`` (channels-last).
    A dense convolution given ``input_grad`` returns ``(input_grad(), gkernel)``, the two
    computed at the same time (``_dense_kernel_grad``).

    Dense and grouped: ``gkernel = im2col(x)^T @ gy`` (one BLAS matmul per group). ``gx``: with
    unit strides, a valid convolution of the zero-padded ``gy`` with the flipped, transposed
    kernel (im2col + one matmul); with larger strides, ``col2im(gy @ kernel^T)`` (one strided add
    per tap). Depthwise: per-tap products, like the forward.
    """
    nd = kernel.ndim - 2
    ksize = kernel.shape[:nd]
    pads = [conv_pads(x.shape[1 + i], ksize[i], strides[i], dilation[i], padding) for i in range(nd)]
    padded = any(p != (0, 0) for p in pads)
    xp = np.pad(x, [(0, 0), *pads, (0, 0)]) if padded else x
    out_spatial = gy.shape[1:-1]
    n, channels, out = x.shape[0], x.shape[-1], kernel.shape[-1]
    taps = int(np.prod(ksize))
    m = n * int(np.prod(out_spatial))
    dtype = np.result_type(x, kernel)
    gy = np.ascontiguousarray(gy, dtype=dtype)
    cg, og = channels // groups, out // groups
    crop = (slice(None), *(slice(lo, lo + x.shape[1 + i]) for i, (lo, _) in enumerate(pads)))
    if cg == 1 and groups > 1:  # depthwise: per-tap products, vectorized over pixels and channels
        win = _windows(xp, ksize, strides, dilation, out_spatial)
        w = kernel.reshape(*ksize, groups, og)
        g3 = gy.reshape(n, *out_spatial, groups, og)
        gk = np.empty((*ksize, groups, og), dtype=dtype)
        gxp = np.zeros(xp.shape, dtype=dtype)
        lead = (slice(None),) * (1 + nd)
        for tap in np.ndindex(*ksize):
            xt = win[lead + tap]  # (N, o..., C), a strided view
            where = (slice(None), *_tap_slices(tap, dilation, out_spatial, strides))
            if og == 1:
                g1 = g3[..., 0]
                gk[tap][:, 0] = (xt * g1).reshape(-1, groups).sum(0)
                gxp[where] += g1 * w[tap][:, 0]
            else:
                gk[tap] = (xt[..., None] * g3).reshape(-1, groups, og).sum(0)
                gxp[where] += (g3 * w[tap]).sum(-1)
        return (gxp[crop] if padded else gxp), gk.reshape(kernel.shape)
    if groups == 1:
        gk, gx = _dense_kernel_grad(xp, gy, ksize, strides, dilation, input_grad)
        gk = gk.reshape(kernel.shape)
        if input_grad is not None:
            return gx, gk
    else:
        cols = _windows(xp, ksize, strides, dilation, out_spatial, group_first=groups).reshape(groups, m, taps * cg)
        g3 = gy.reshape(m, groups, og).transpose(1, 0, 2)  # (G, M, og)
        gw = np.matmul(cols.transpose(0, 2, 1), g3)  # (G, taps*cg, og)
        gk = gw.reshape(groups, taps, cg, og).transpose(1, 2, 0, 3).reshape(kernel.shape)
        del cols
    if not want_x:  # e.g. the first layer: nobody reads the gradient of the model's input
        return None, gk
    as_conv = input_grad_conv(kernel, groups, pads, dilation) if all(s == 1 for s in strides) else None
    if as_conv is not None:  # a valid conv of gy, padded, with the flipped kernel
        flipped, back = as_conv
        return _conv_nhwc(np.pad(gy, [(0, 0), *back, (0, 0)]), flipped, strides, "valid", dilation, groups), gk
    if groups == 1:
        dcols = gy.reshape(m, out) @ kernel.reshape(taps * channels, out).T
    else:
        w = kernel.reshape(taps, cg, groups, og).transpose(2, 0, 1, 3).reshape(groups, taps * cg, og)
        dcols = np.matmul(g3, w.transpose(0, 2, 1))  # (G, M, taps*cg)
        dcols = dcols.reshape(groups, m, taps, cg).transpose(1, 2, 0, 3)
    gxp = _col2im(dcols.reshape(n, *out_spatial, taps, channels), xp.shape, ksize, strides, dilation)
    return (gxp[crop] if padded else gxp), gk


def _to_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def _from_last(y, data_format):
    return y if data_format == "channels_last" else np.ascontiguousarray(np.moveaxis(y, -1, 1))


def _finish(y, bias, dtype, data_format):
    """The conv's output ``y`` (its own fresh array) plus ``bias``, in ``dtype`` and ``data_format``."""
    if bias is not None:
        if np.result_type(y, bias) == y.dtype:
            y += bias  # in place: `y + bias` would make a second array of y's size
        else:
            y = y + bias
    return _from_last(y.astype(dtype, copy=False), data_format)


# -- ONNX helpers -----------------------------------------------------------------------------------


def _to_first(ctx, x: str, data_format: str, nd: int) -> str:
    if data_format == "channels_first":
        return x
    out = ctx.node("Transpose", [x], perm=[0, nd + 1, *range(1, nd + 1)])[0]
    ctx.dtypes[out] = ctx.dtypes.get(x)
    return out


def _emit_first(ctx, op_type: str, x: str, inputs: list, outs, data_format: str, nd: int, **attrs) -> list:
    """Emit ``op_type`` on channels-first ``x`` and write ``outs`` (names, or a count of new ones)
    in ``data_format``; returns the output names."""
    if data_format == "channels_first":
        return ctx.node(op_type, [x, *inputs], outs, **attrs)
    y = ctx.node(op_type, [x, *inputs], **attrs)[0]
    return ctx.node("Transpose", [y], outs, perm=[0, *range(2, nd + 2), 1])


def _dynamic_same_pad(ctx, x, nd, ksize, strides, dilation) -> str:
    """Pad channels-first ``x`` for ``same`` from its runtime shape (no static ONNX attribute can)."""
    eff = [(k - 1) * d + 1 for k, d in zip(ksize, dilation)]
    n = ctx.node("Slice", [ctx.node("Shape", [x])[0], ctx.int64s([2]), ctx.int64s([2 + nd])])[0]
    s = ctx.int64s(strides)
    out = ctx.node("Div", [ctx.node("Add", [n, ctx.int64s([st - 1 for st in strides])])[0], s])[0]
    span = ctx.node("Add", [ctx.node("Mul", [ctx.node("Sub", [out, ctx.int64s([1] * nd)])[0], s])[0], ctx.int64s(eff)])
    need = ctx.node("Max", [ctx.node("Sub", [span[0], n])[0], ctx.int64s([0] * nd)])[0]
    begin = ctx.node("Div", [need, ctx.int64s([2] * nd)])[0]
    end = ctx.node("Sub", [need, begin])[0]
    pads = ctx.node("Concat", [ctx.int64s([0, 0]), begin, ctx.int64s([0, 0]), end], axis=0)[0]
    out = ctx.node("Pad", [x, pads])[0]
    ctx.dtypes[out] = ctx.dtypes.get(x)
    return out


def _lower_conv(ctx, x, w, bias, outs, ksize, groups, strides, padding, data_format, dilation) -> list:
    nd = len(strides)
    attrs = {"strides": list(strides), "dilations": list(dilation)}
    if groups > 1:
        attrs["group"] = groups
    eff = [(k - 1) * d + 1 for k, d in zip(ksize, dilation)]
    x = _to_first(ctx, x, data_format, nd)
    if padding != "same" or all(s == 1 or e == 1 for s, e in zip(strides, eff)):
        pads = [conv_pads(1, k, s, d, padding) for k, s, d in zip(ksize, strides, dilation)]
        attrs["pads"] = [p[0] for p in pads] + [p[1] for p in pads]
    elif all(d == 1 for d in dilation) and all(s == 1 or e >= s for s, e in zip(strides, eff)):
        # The pads depend on the input size. ORT's SAME_UPPER is Keras' rule here (it refuses
        # dilations, and mis-pads a kernel smaller than its stride).
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        x = _dynamic_same_pad(ctx, x, nd, ksize, strides, dilation)
    return _emit_first(ctx, "Conv", x, [w] + ([bias] if bias is not None else []), outs, data_format, nd, **attrs)
