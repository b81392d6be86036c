"""Keras 3.15's ``ContrastLimitedAdaptiveHistogramEqualization`` (CLAHE)."""

from __future__ import annotations

from irtool import ops
from irtool.layers.layer import Layer
from irtool.ops.clahe import CLAHE_PRIM
from irtool.ops.conv_utils import standardize_data_format
from irtool.ops.core import apply


class ContrastLimitedAdaptiveHistogramEqualization(Layer):
    """Adaptive histogram equalization of each image channel over a ``tile_grid_size`` grid of
    tiles, each tile's histogram clipped at ``clip_limit`` times the uniform count, blended
    bilinearly between tiles (``irtool.ops.clahe`` has the details). Not random: as in Keras it
    acts at inference, in training and in the export alike. Images are ``(batch, height, width,
    channels)`` (or one image without the batch axis) in ``value_range``.
    """

    def __init__(self, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.value_range = value_range
        self.clip_limit = clip_limit
        self.tile_grid_size = tile_grid_size
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs, training=True):  # the same in training and at inference
        rank = len(inputs.shape)
        if rank not in (3, 4):
            raise ValueError(
                f"Layer '{self.name}' expects images of rank 3 (one image) or 4 (a batch). "
                f"Received: inputs.shape={tuple(inputs.shape)}"
            )
        images = ops.expand_dims(inputs, 0) if rank == 3 else inputs
        attrs = {
            "value_range": tuple(float(v) for v in self.value_range),
            "clip_limit": float(self.clip_limit),
            "tile_grid_size": tuple(int(v) for v in self.tile_grid_size),
            "data_format": self.data_format,
        }
        result = apply(CLAHE_PRIM, [images], **attrs)[0]
        return ops.squeeze(result, 0) if rank == 3 else result

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "clip_limit": self.clip_limit,
            "tile_grid_size": self.tile_grid_size,
            "data_format": self.data_format,
        }
