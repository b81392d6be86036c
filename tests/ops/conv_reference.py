"""Naive-loop references for the convolution tests (float64, loops over output pixels and
kernel taps), written from TensorFlow's and Keras' definitions, independent of irtool."""

from __future__ import annotations

import itertools
import math

import numpy as np


def _last(x, data_format):
    x = np.asarray(x, np.float64)
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def _back(y, data_format):
    y = np.moveaxis(y, -1, 1) if data_format == "channels_first" else y
    return y.astype("float32")


def ref_conv(x, kernel, strides=1, padding="valid", data_format="channels_last", dilation=1, bias=None):
    """Cross-correlation as TensorFlow defines it ("same": ceil(n/s) outputs, extra pad at the end)."""
    x, k = _last(x, data_format), kernel.astype(np.float64)
    nd = x.ndim - 2
    strides = (strides,) * nd if isinstance(strides, int) else strides
    dilation = (dilation,) * nd if isinstance(dilation, int) else dilation
    ksize, cin_g, out = k.shape[:nd], k.shape[-2], k.shape[-1]
    groups = x.shape[-1] // cin_g
    out_g = out // groups
    pads = []
    for n, kk, s, d in zip(x.shape[1:-1], ksize, strides, dilation):
        eff = (kk - 1) * d + 1
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "causal":
            pads.append((eff - 1, 0))
        else:
            total = max((math.ceil(n / s) - 1) * s + eff - n, 0)
            pads.append((total // 2, total - total // 2))
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_sp = [(x.shape[1 + i] - (ksize[i] - 1) * dilation[i] - 1) // strides[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], *out_sp, out))
    for o in itertools.product(*map(range, out_sp)):
        for j in itertools.product(*map(range, ksize)):
            pixel = x[(slice(None), *(o[i] * strides[i] + j[i] * dilation[i] for i in range(nd)))]
            for g in range(groups):
                cols = slice(g * out_g, (g + 1) * out_g)
                y[(slice(None), *o, cols)] += pixel[:, g * cin_g : (g + 1) * cin_g] @ k[j][:, cols]
    if bias is not None:
        y += bias
    return _back(y, data_format)


def ref_depthwise(x, kernel, strides=1, padding="valid", data_format="channels_last", dilation=1):
    c, dm = kernel.shape[-2:]
    dense = np.zeros((*kernel.shape[:-2], 1, c * dm), kernel.dtype)
    for ci in range(c):
        for m in range(dm):
            dense[..., 0, ci * dm + m] = kernel[..., ci, m]
    return ref_conv(x, dense, strides, padding, data_format, dilation)


def keras_deconv_length(n, k, s, d, padding, output_padding):
    """keras.src.utils.conv_utils.deconv_output_length."""
    k = (k - 1) * d + 1
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


def ref_conv_transpose(x, kernel, strides=1, padding="valid", output_padding=None, data_format="channels_last",
                       dilation=1, bias=None):  # fmt: skip
    """The adjoint of ``ref_conv`` onto Keras' output length: scatter ``x[i] * w[j]`` to
    ``i*s + j*d - P`` with ``P`` the begin pad TF's forward conv would use on that length."""
    x, k = _last(x, data_format), kernel.astype(np.float64)
    nd = x.ndim - 2
    strides = (strides,) * nd if isinstance(strides, int) else strides
    dilation = (dilation,) * nd if isinstance(dilation, int) else dilation
    ops_ = (output_padding,) * nd if output_padding is None or isinstance(output_padding, int) else output_padding
    ksize = k.shape[:nd]
    lengths, begins = [], []
    for n, kk, s, d, p in zip(x.shape[1:-1], ksize, strides, dilation, ops_):
        length = keras_deconv_length(n, kk, s, d, padding, p)
        need = max((n - 1) * s + (kk - 1) * d + 1 - length, 0) if padding == "same" else 0
        lengths.append(length)
        begins.append(need // 2)
    y = np.zeros((x.shape[0], *lengths, k.shape[-2]))
    for i in itertools.product(*map(range, x.shape[1:-1])):
        for j in itertools.product(*map(range, ksize)):
            pos = [i[a] * strides[a] + j[a] * dilation[a] - begins[a] for a in range(nd)]
            if all(0 <= p < L for p, L in zip(pos, lengths)):
                y[(slice(None), *pos)] += x[(slice(None), *i)] @ k[j].T
    if bias is not None:
        y += bias
    return _back(y, data_format)
