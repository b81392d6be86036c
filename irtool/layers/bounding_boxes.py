"""Keras 3.15's ``MaxNumBoundingBoxes``: images pass unchanged; bounding boxes are cut or padded
to exactly ``max_number`` per image."""

from __future__ import annotations

from irtool import ops
from irtool.layers.layer import Layer
from irtool.ops.conv_utils import standardize_data_format


class MaxNumBoundingBoxes(Layer):
    """Makes every image carry exactly ``max_number`` boxes: on a dict ``{"images": ...,
    "bounding_boxes": {"boxes": (batch, n, 4), "labels": (batch, n)}}`` (or one image without
    the batch axis) the first ``max_number`` boxes and labels are kept and missing ones are
    filled with ``fill_value``; images, and a plain image tensor, pass unchanged (at inference,
    in training and in the export). As in Keras, ``fill_value`` is not part of the config.
    """

    def __init__(self, max_number, fill_value=-1, bounding_box_format=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.max_number = int(max_number)
        self.fill_value = int(fill_value)
        self.bounding_box_format = bounding_box_format
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, data, training=True):
        if not isinstance(data, dict):
            return data  # recorded as an identity: every layer output is its own tensor
        result = dict(data)
        if "bounding_boxes" in data:
            if not self.bounding_box_format:
                raise ValueError(
                    f"Layer '{self.name}' got an input with a 'bounding_boxes' key, but no bounding box format. "
                    "Pass a `bounding_box_format` argument to the layer, e.g. `bounding_box_format='xyxy'`."
                )
            boxes = data["bounding_boxes"]
            extra = set(boxes) - {"boxes", "labels"}
            if extra:
                raise KeyError(f"There are unsupported keys in `bounding_boxes`: {sorted(extra)}. Only `boxes` and `labels` are supported.")  # fmt: skip
            batched = len(data["images"].shape) == 4
            result["bounding_boxes"] = {
                "boxes": self._fit(boxes["boxes"], 1 if batched else 0, "boxes"),
                "labels": self._fit(boxes["labels"], 1 if batched else 0, "labels"),
            }
        return result

    def _fit(self, values, axis, key):
        count = values.shape[axis]
        if count is None:
            raise ValueError(
                f"Layer '{self.name}' needs the number of bounding boxes to be known to pad `{key}` to "
                f"{self.max_number}. Received: shape {tuple(values.shape)}"
            )
        if count > self.max_number:
            key_slices = [slice(None)] * axis + [slice(0, self.max_number)]
            return ops.get_item(values, tuple(key_slices))
        pads = [[0, 0] for _ in values.shape]
        pads[axis][1] = self.max_number - count
        return ops.pad(values, pads, constant_values=self.fill_value)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "data_format": self.data_format}
        if self.bounding_box_format is not None:
            config["bounding_box_format"] = self.bounding_box_format
        return {**config, "max_number": self.max_number}
