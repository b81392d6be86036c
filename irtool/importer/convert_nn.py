"""Converters for ONNX's neural-network ops: convolutions, pooling and normalization.

ONNX is channels-first; irtool's spatial primitives take ``data_format``, so each maps onto the
``channels_first`` primitive directly (no layout transposes). Kernels are stored in Keras'
layout (``(k..., in/groups, out)``), which is what the lowering folds back into ONNX's. Explicit
``pads`` become ``"same"`` when they equal Keras' same padding for the input's size (what irtool
itself exports), else an explicit ``pad`` before a ``"valid"`` op.
"""

from __future__ import annotations

import numpy as np

from irtool import ops
from irtool.importer.registry import converter

CF = "channels_first"


def _spatial(x) -> list:
    return list(x.shape[2:])


def same_pads(sizes, kernel, strides, dilations):
    """Keras' ``"same"`` padding (extra at the end) per spatial axis, or ``None`` for an unknown size."""
    pads = []
    for n, k, s, d in zip(sizes, kernel, strides, dilations):
        if n is None:
            return None
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def explicit_pads(node, x, kernel, strides, dilations, auto_pad, pads):
    """The (begin, end) pads per spatial axis that ONNX's ``auto_pad``/``pads`` ask for."""
    nd = len(kernel)
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        same = same_pads(_spatial(x), kernel, strides, dilations)
        if same is None:
            if auto_pad == "SAME_UPPER":
                return "same"
            raise node.error(f"auto_pad=SAME_LOWER needs known spatial sizes; input shape {tuple(x.shape)}")
        return same if auto_pad == "SAME_UPPER" else [(e, b) for b, e in same]
    if auto_pad == "VALID" or pads is None:
        return [(0, 0)] * nd
    return [(int(pads[i]), int(pads[i + nd])) for i in range(nd)]


def padding_mode(x, pads, kernel, strides, dilations):
    """``"valid"``, ``"same"``, or ``None`` when ``pads`` need an explicit ``pad`` first."""
    if pads == "same":
        return "same"
    if all(b == 0 and e == 0 for b, e in pads):
        return "valid"
    if pads == same_pads(_spatial(x), kernel, strides, dilations):
        return "same"
    return None


def _pad_spatial(x, pads, value=0.0):
    return ops.pad(x, [[0, 0], [0, 0], *[[b, e] for b, e in pads]], constant_values=value)


def _conv_kernel_to_keras(w):
    nd = w.ndim - 2
    return np.transpose(w, (*range(2, nd + 2), 1, 0))


@converter("Conv", auto_pad="NOTSET", group=1)
def _conv(node, auto_pad, group, kernel_shape=None, strides=None, dilations=None, pads=None):
    x = node[0]
    w = node.weight(1, to_irtool=_conv_kernel_to_keras, as_ops=lambda t: ops.transpose(t, _kernel_perm(t)))
    nd = len(w.shape) - 2
    kernel = tuple(w.shape[:nd])
    strides, dilations = tuple(strides or (1,) * nd), tuple(dilations or (1,) * nd)
    bias = node[2]
    channels = x.shape[1]
    if channels is not None and w.shape[nd] * group != channels:
        raise node.error(f"kernel shape {tuple(w.shape)} with group={group} does not fit input shape {tuple(x.shape)}")
    pads = explicit_pads(node, x, kernel, strides, dilations, auto_pad, pads)
    mode = padding_mode(x, pads, kernel, strides, dilations)
    if mode is None:
        x, mode = _pad_spatial(x, pads), "valid"
    return ops.conv(x, w, strides, mode, CF, dilations, bias=bias)


def _kernel_perm(t):
    nd = len(t.shape) - 2
    return (*range(2, nd + 2), 1, 0)


@converter("ConvTranspose", auto_pad="NOTSET", group=1)
def _conv_transpose(
    node,
    auto_pad,
    group,
    kernel_shape=None,
    strides=None,
    dilations=None,
    pads=None,
    output_padding=None,
    output_shape=None,
):
    if group != 1:
        raise node.error(f"group={group}: irtool's conv_transpose has no groups")
    x = node[0]
    # ONNX (C_in, C_out, k...) -> Keras (k..., C_out, C_in).
    w = node.weight(1, to_irtool=_conv_kernel_to_keras, as_ops=lambda t: ops.transpose(t, _kernel_perm(t)))
    nd = len(w.shape) - 2
    kernel = tuple(w.shape[:nd])
    strides, dilations = tuple(strides or (1,) * nd), tuple(dilations or (1,) * nd)
    output_padding = tuple(output_padding or (0,) * nd)
    full = [
        None if n is None else (n - 1) * s + (k - 1) * d + 1 + p
        for n, k, s, d, p in zip(_spatial(x), kernel, strides, dilations, output_padding)
    ]
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if None in full:
            raise node.error(f"output_shape/auto_pad need known spatial sizes; input shape {tuple(x.shape)}")
        wanted = list(output_shape)[-nd:] if output_shape is not None else [n * s for n, s in zip(_spatial(x), strides)]
        totals = [f - o for f, o in zip(full, wanted)]
        upper = auto_pad != "SAME_LOWER"
        crops = [(t // 2, t - t // 2) if upper else (t - t // 2, t // 2) for t in totals]
    else:
        pads = pads or (0,) * (2 * nd)
        crops = [(int(pads[i]), int(pads[i + nd])) for i in range(nd)]
    if any(s <= p for s, p in zip(strides, output_padding) if p):
        raise node.error(f"output_padding {output_padding} must be smaller than strides {strides}")
    # The full scatter ((n-1)*s + K + output_padding), then ONNX's pads cropped off each end.
    y = ops.conv_transpose(x, w, strides, "valid", output_padding, CF, dilations, bias=node[2])
    if any(b or e for b, e in crops):
        key = [slice(None), slice(None)] + [slice(b, (-e) if e else None) for b, e in crops]
        y = ops.get_item(y, tuple(key))
    return y


# -- pooling -----------------------------------------------------------------------------------


def _pool_setup(node, x, kernel_shape, strides, dilations, auto_pad, pads, ceil_mode):
    """Kernel, strides, the asked-for pads, and those pads grown at the end for ``ceil_mode``."""
    nd = len(kernel_shape)
    kernel = tuple(int(k) for k in kernel_shape)
    strides = tuple(strides or (1,) * nd)
    dilations = tuple(dilations or (1,) * nd)
    if any(d != 1 for d in dilations) and node.op_type != "MaxPool":
        raise node.error(f"dilations={dilations}: irtool's average pooling has no dilation")
    # A dilated window spans (k-1)*d+1 elements; only MaxPool (below) takes dilations.
    kernel = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    pads = explicit_pads(node, x, kernel, strides, (1,) * nd, auto_pad, pads)
    if not ceil_mode or pads == "same":
        return kernel, strides, pads, pads
    grown = []
    for n, k, s, (b, e) in zip(_spatial(x), kernel, strides, pads):
        if n is None:
            raise node.error(f"ceil_mode=1 needs known spatial sizes; input shape {tuple(x.shape)}")
        out = -(-(n + b + e - k) // s) + 1
        if (out - 1) * s >= n + b:
            out -= 1  # ONNX drops a last window that would start in the end padding
        grown.append((b, max(e, (out - 1) * s + k - n - b)))
    return kernel, strides, pads, grown


@converter("MaxPool", auto_pad="NOTSET", ceil_mode=0, storage_order=0)
def _max_pool(node, kernel_shape, auto_pad, ceil_mode, storage_order, strides=None, pads=None, dilations=None):
    if node.num_outputs > 1:
        raise node.error("the Indices output is not supported")
    x = node[0]
    span, strides, _, pads = _pool_setup(node, x, kernel_shape, strides, dilations, auto_pad, pads, ceil_mode)
    if dilations is not None and any(d != 1 for d in dilations):
        return _dilated_max_pool(node, x, tuple(kernel_shape), strides, tuple(dilations), pads)
    mode = padding_mode(x, pads, span, strides, (1,) * len(span))
    if mode is None:  # padding never wins a max: pad with -inf
        x, mode = _pad_spatial(x, pads, -np.inf), "valid"
    return ops.max_pool(x, span, strides, mode, CF)


def _dilated_max_pool(node, x, kernel, strides, dilations, pads):
    """The maximum of one strided slice per kernel tap (irtool's max_pool has no dilation)."""
    if pads == "same":
        raise node.error(f"auto_pad with dilations needs known spatial sizes; input shape {tuple(x.shape)}")
    if any(b or e for b, e in pads):
        x = _pad_spatial(x, pads, -np.inf)
    sizes = _spatial(x)
    if None in sizes:
        raise node.error(f"dilations need known spatial sizes; input shape {tuple(x.shape)}")
    outs = [(n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(sizes, kernel, strides, dilations)]
    y = None
    for taps in np.ndindex(*kernel):
        key = [slice(None), slice(None)]
        key += [slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(taps, dilations, outs, strides)]
        window = ops.get_item(x, tuple(key))
        y = window if y is None else ops.maximum(y, window)
    return y


@converter("AveragePool", auto_pad="NOTSET", ceil_mode=0, count_include_pad=0)
def _average_pool(node, kernel_shape, auto_pad, ceil_mode, count_include_pad, strides=None, pads=None, dilations=None):
    x = node[0]
    kernel, strides, asked, pads = _pool_setup(node, x, kernel_shape, strides, dilations, auto_pad, pads, ceil_mode)
    mode = padding_mode(x, pads, kernel, strides, (1,) * len(kernel))
    if mode == "valid" or (mode == "same" and not count_include_pad):
        return ops.average_pool(x, kernel, strides, mode, CF)  # Keras' same averages exclude the pads
    if pads == "same":
        raise node.error(f"auto_pad with count_include_pad=1 needs known spatial sizes; input {tuple(x.shape)}")
    y = ops.average_pool(_pad_spatial(x, pads), kernel, strides, "valid", CF)
    # Divide by the elements each window counts instead of the window size: the real elements, plus
    # the asked-for pads with count_include_pad (never ceil_mode's extra end). That count is a
    # constant, computed here by pooling a frame of ones.
    frame = np.ones([1, 1, *_spatial(x)], "float64")
    if count_include_pad:
        frame = np.pad(frame, [(0, 0), (0, 0), *asked], constant_values=1.0)
        extra = [(0, e - a) for (_, e), (_, a) in zip(pads, asked)]
    else:
        extra = pads
    frame = np.pad(frame, [(0, 0), (0, 0), *extra])
    counted = ops.average_pool(frame, kernel, strides, "valid", CF)
    if np.allclose(counted, 1.0):
        return y
    return ops.multiply(y, (1.0 / np.asarray(counted)).astype(str(x.dtype)))


@converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(node):
    x = node[0]
    axes = tuple(range(2, len(x.shape)))
    reduce = ops.mean if node.op_type == "GlobalAveragePool" else ops.max
    return reduce(x, axis=axes, keepdims=True)


# -- normalization -----------------------------------------------------------------------------


@converter("BatchNormalization", epsilon=1e-5, momentum=0.9, training_mode=0)
def _batch_norm(node, epsilon, momentum, training_mode):
    if training_mode or node.num_outputs > 1:
        raise node.error("training_mode=1 (batch statistics as outputs) is not supported; export in eval mode")
    x = node[0]
    scale, bias = node[1], node[2]
    # The running statistics are weights too, but frozen, as Keras' moving_mean/moving_variance.
    mean, var = node.weight(3), node.weight(4)
    for v in (mean, var):
        if hasattr(v, "trainable"):
            v.trainable = False
    return ops.batch_normalization(x, mean, var, axis=1, offset=bias, scale=scale, epsilon=epsilon)


@converter("LayerNormalization", axis=-1, epsilon=1e-5, stash_type=1)
def _layer_norm(node, axis, epsilon, stash_type):
    if node.num_outputs > 1:
        raise node.error("the Mean/InvStdDev outputs are not supported")
    x = node[0]
    rank = len(x.shape)
    axis = axis + rank if axis < 0 else axis
    return ops.layer_normalization(x, node[1], node[2], axis=tuple(range(axis, rank)), epsilon=epsilon)


@converter("InstanceNormalization", epsilon=1e-5)
def _instance_norm(node, epsilon):
    x = node[0]
    rank = len(x.shape)
    axes = tuple(range(2, rank))
    mean, var = ops.moments(x, axes, keepdims=True)
    extra = (1,) * (rank - 2)
    scale = ops.reshape(node[1], (-1, *extra))
    bias = ops.reshape(node[2], (-1, *extra))
    dtype = str(x.dtype)
    normed = ops.divide(ops.subtract(x, mean), ops.sqrt(ops.add(var, np.asarray(epsilon, dtype))))
    return ops.add(ops.multiply(normed, scale), bias)


# -- Resize ------------------------------------------------------------------------------------

_HALF_PIXEL = ("half_pixel", "pytorch_half_pixel")


@converter(
    "Resize",
    static=(1, 2, 3),
    mode="nearest",
    coordinate_transformation_mode="half_pixel",
    nearest_mode="round_prefer_floor",
    antialias=0,
    exclude_outside=0,
    keep_aspect_ratio_policy="stretch",
)
def _resize(
    node,
    mode,
    coordinate_transformation_mode,
    nearest_mode,
    antialias,
    exclude_outside,
    keep_aspect_ratio_policy,
    **rest,
):
    """Resize onto irtool's image resize, where its coordinates are ONNX's exactly.

    Integer upscale factors repeat pixels in nearest mode (``floor(i / f)``: ONNX's ``asymmetric``
    + ``floor``, or half-pixel with either rounding, which never ties there) and are half-pixel
    bilinear in linear mode; other sizes need half-pixel coordinates with ``round_prefer_ceil``
    (torch's ``nearest-exact``) or linear, two spatial axes and a scale equal to out / in.
    """
    x = node[0]
    mode, ctm, rounding = (_text(v) for v in (mode, coordinate_transformation_mode, nearest_mode))
    where = f"mode={mode}, coordinate_transformation_mode={ctm}" + (
        f", nearest_mode={rounding}" if mode == "nearest" else ""
    )
    if rest.get("axes") is not None or antialias or exclude_outside or _text(keep_aspect_ratio_policy) != "stretch":
        raise node.error("axes, antialias, exclude_outside and keep_aspect_ratio_policy are not supported")
    spatial = _spatial(x)
    scales, sizes = node.static(2, "scales"), node.static(3, "sizes")
    if sizes is not None and sizes.size:
        if any(d is not None and int(s) != d for s, d in zip(sizes[:2], x.shape[:2])):
            raise node.error(f"only the spatial axes can be resized; sizes {list(sizes)} for input {tuple(x.shape)}")
        out = [int(s) for s in sizes[2:]]
        factors = [o // n if n and o % n == 0 else None for o, n in zip(out, spatial)]
        exact_scale = True  # ONNX derives the scale as out / in
    elif scales is not None and scales.size:
        if any(float(s) != 1.0 for s in scales[:2]):
            raise node.error(f"only the spatial axes can be resized; scales {list(scales)}")
        factors = [int(s) if float(s) == int(s) and s >= 1 else None for s in scales[2:]]
        out = [None if n is None else int(np.floor(n * float(s))) for n, s in zip(spatial, scales[2:])]
        exact_scale = all(n is not None and float(np.float32(o) / np.float32(n)) == float(s)
                          for o, n, s in zip(out, spatial, scales[2:]))  # fmt: skip
    else:
        raise node.error("one of scales or sizes must be given")
    if all(f == 1 for f in factors):
        return x
    if mode == "nearest" and None not in factors:
        if (ctm == "asymmetric" and rounding == "floor") or (
            ctm in _HALF_PIXEL and rounding in ("round_prefer_floor", "round_prefer_ceil")
        ):
            return ops.image.upsample(x, factors, "nearest", data_format=CF)
    half_pixel = ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and None not in out and min(out) > 1)
    if half_pixel and len(spatial) == 2 and (mode == "linear" or rounding == "round_prefer_ceil"):
        interpolation = "bilinear" if mode == "linear" else "nearest"
        if mode == "linear" and None not in factors:
            return ops.image.upsample(x, factors, interpolation, data_format=CF)
        if None not in out and exact_scale:
            return ops.image.resize(x, out, interpolation, data_format=CF)
    raise node.error(
        f"{where} to {'sizes ' + str(out) if sizes is not None and sizes.size else 'scales ' + str(list(scales))} on "
        f"input {tuple(x.shape)} has no exact irtool resize (supported: nearest with integer factors, asymmetric+floor "
        "or half-pixel; half-pixel linear or round_prefer_ceil nearest on two spatial axes)"
    )


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
