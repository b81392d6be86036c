"""Adaptive pooling: average or max pooling to a fixed spatial ``output_size`` (Keras' ops).

Bins follow PyTorch (and so Keras): along an axis of length ``L`` pooled to ``n``, bin ``i``
covers ``[floor(i * L / n), ceil((i + 1) * L / n))``, so neighbouring bins may overlap. When
every axis divides evenly the bins are a plain pooling window (``pool_size = stride = L / n``,
ONNX ``AveragePool``/``MaxPool``); otherwise each axis in turn is sliced per bin, reduced and
concatenated. Both forms are existing primitives, so gradients and the export come with them.
Reducing axis by axis is exact: a bin is a box, and a mean (max) over a box is the mean (max)
over one axis of the means (maxima) over the others. Spatial sizes must be static.
"""

from __future__ import annotations

import numpy as np

from irtool.ops.conv_utils import standardize_data_format
from irtool.ops.operation import top_level_op
from irtool.ops.pooling import average_pool, max_pool, standardize_tuple
from irtool.ops.reduce import max as _max
from irtool.ops.reduce import mean as _mean
from irtool.ops.shape import concatenate, get_item


def adaptive_bins(length: int, size: int) -> list:
    """``[(start, end), ...]``: the ``size`` bins of an axis of ``length`` (PyTorch's bounds)."""
    return [((i * length) // size, -((-(i + 1) * length) // size)) for i in range(size)]


def _adaptive(kind, inputs, output_size, data_format):
    if not hasattr(inputs, "shape"):
        inputs = np.asarray(inputs, dtype="float32")
    data_format = standardize_data_format(data_format)
    num_spatial = len(inputs.shape) - 2
    if num_spatial not in (1, 2, 3):
        raise ValueError(
            "Inputs to adaptive pooling must have ndim=3, 4 or 5 (1D, 2D and 3D inputs). "
            f"Received input shape: {tuple(inputs.shape)}."
        )
    output_size = standardize_tuple(output_size, num_spatial, "output_size")
    first = 1 if data_format == "channels_last" else 2
    axes = list(range(first, first + num_spatial))
    lengths = [inputs.shape[a] for a in axes]
    if None in lengths:
        raise ValueError(
            f"Adaptive pooling needs static spatial sizes. Received input shape: {tuple(inputs.shape)} "
            f"(data_format={data_format})."
        )
    if all(length % size == 0 for length, size in zip(lengths, output_size)):
        window = tuple(length // size for length, size in zip(lengths, output_size))
        pool = average_pool if kind == "average" else max_pool
        return pool(inputs, window, window, "valid", data_format)
    reduce = _mean if kind == "average" else _max
    x = inputs
    for axis, length, size in zip(axes, lengths, output_size):
        if length == size:
            continue
        lead = (slice(None),) * axis
        pieces = [
            reduce(get_item(x, (*lead, slice(start, end))), axis=axis, keepdims=True)
            for start, end in adaptive_bins(length, size)
        ]
        x = concatenate(pieces, axis=axis) if len(pieces) > 1 else pieces[0]
    return x


@top_level_op("AdaptiveAveragePool")
def adaptive_average_pool(inputs, output_size, data_format=None):
    """Average pooling of a rank 3, 4 or 5 tensor to the spatial ``output_size`` (int or tuple)."""
    return _adaptive("average", inputs, output_size, data_format)


@top_level_op("AdaptiveMaxPool")
def adaptive_max_pool(inputs, output_size, data_format=None):
    """Max pooling of a rank 3, 4 or 5 tensor to the spatial ``output_size`` (int or tuple)."""
    return _adaptive("max", inputs, output_size, data_format)
