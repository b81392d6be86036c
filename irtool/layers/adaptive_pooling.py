"""Adaptive pooling layers (Keras 3.15): average or max pooling to a fixed ``output_size``.

The pooling itself is ``ops.adaptive_average_pool``/``ops.adaptive_max_pool`` (PyTorch's bins);
these classes only normalize ``output_size`` to a tuple as Keras does and keep its config.
"""

from __future__ import annotations

from irtool import backend, ops
from irtool.layers.layer import Layer


class _AdaptivePooling(Layer):
    """Shared by the six classes: ``rank`` spatial axes and Keras' names for them."""

    rank = 0
    axes_names = ""
    kind = ""

    def __init__(self, output_size, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.output_size = self._output_size(output_size)
        self.data_format = data_format or backend.image_data_format()
        if self.data_format not in {"channels_first", "channels_last"}:
            raise ValueError(f"Invalid data_format: {self.data_format}. Expected 'channels_first' or 'channels_last'.")

    def _output_size(self, output_size):
        if isinstance(output_size, int):
            return (output_size,) * self.rank
        if isinstance(output_size, (tuple, list)) and len(output_size) == self.rank:
            return tuple(output_size)
        if self.rank == 1 and isinstance(output_size, (tuple, list)):
            raise ValueError(f"For 1D input, `output_size` tuple must have length 1. Received: {output_size}")
        raise TypeError(
            f"`output_size` must be an integer or {self.axes_names}. "
            f"Received: {output_size} of type {type(output_size)}"
        )

    def call(self, inputs):
        pool = ops.adaptive_average_pool if self.kind == "average" else ops.adaptive_max_pool
        return pool(inputs, output_size=self.output_size, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_last":
            return (input_shape[0], *self.output_size, input_shape[-1])
        return (input_shape[0], input_shape[1], *self.output_size)

    def get_config(self):
        config = super().get_config()
        config.update({"output_size": self.output_size, "data_format": self.data_format})
        return config


class AdaptiveAveragePooling1D(_AdaptivePooling):
    """Averages the steps of ``(batch, steps, channels)`` inputs into ``output_size`` bins."""

    rank, axes_names, kind = 1, "tuple of 1 integer", "average"


class AdaptiveAveragePooling2D(_AdaptivePooling):
    """Averages images into ``output_size`` (an int or ``(height, width)``) bins."""

    rank, axes_names, kind = 2, "(height, width) tuple", "average"


class AdaptiveAveragePooling3D(_AdaptivePooling):
    """Averages volumes into ``output_size`` (an int or ``(depth, height, width)``) bins."""

    rank, axes_names, kind = 3, "(depth, height, width) tuple", "average"


class AdaptiveMaxPooling1D(_AdaptivePooling):
    """The maximum of each of ``output_size`` bins of the steps."""

    rank, axes_names, kind = 1, "tuple of 1 integer", "max"


class AdaptiveMaxPooling2D(_AdaptivePooling):
    """The maximum of each of ``output_size`` (an int or ``(height, width)``) image bins."""

    rank, axes_names, kind = 2, "(height, width) tuple", "max"


class AdaptiveMaxPooling3D(_AdaptivePooling):
    """The maximum of each of ``output_size`` (an int or ``(depth, height, width)``) volume bins."""

    rank, axes_names, kind = 3, "(depth, height, width) tuple", "max"
