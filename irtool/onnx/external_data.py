"""ONNX files with their weights in a data file beside them (ONNX's external data).

Protobuf cannot serialize or parse a message of 2 GiB or more, so a model whose weights take more
cannot be one ``.onnx`` file: its large initializers go to ``<file name>.data`` (onnx's
``docs/ExternalData.md``: ``location``, ``offset``, ``length`` per tensor) and the graph file keeps
only their names, types and shapes. ``write_with_external_data`` streams each tensor's bytes to
the data file as they are in the proto, so no second copy of the weights is ever made (onnx's own
``save_model(save_as_external_data=True)`` rewrites the proto it is given and serializes it again).
ONNX Runtime and ``onnx.load`` find the data by its location relative to the graph file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Protobuf's limit on one serialized message.
MAXIMUM_PROTOBUF = 2**31
#: A model whose weights take more than this is written with external data: what is left for
#: the graph itself under protobuf's limit is ample for any real graph.
EXTERNAL_DATA_THRESHOLD = MAXIMUM_PROTOBUF - 2**26
#: Weights smaller than this stay in the graph file when the others move to the data file.
MIN_EXTERNAL_BYTES = 1024


def weight_bytes(proto: onnx.ModelProto) -> int:
    """The bytes of the main graph's initializers (what decides whether a file can hold them)."""
    return sum(raw_data_size(t) or t.ByteSize() for t in proto.graph.initializer)


def raw_data_size(tensor: onnx.TensorProto) -> int | None:
    """``len(tensor.raw_data)`` without reading it (protobuf's upb hands out a copy of the bytes,
    16 ms over ResNet50's weights): the dims' product times the element size, which is what a
    valid tensor holds. None without raw data or for 4-bit and string types."""
    itemsize = _ITEMSIZES.get(tensor.data_type)
    if itemsize is None or not tensor.HasField("raw_data"):
        return None
    return math.prod(tensor.dims) * itemsize


# Bytes per element of the tensor types stored whole bytes per element in raw_data.
_ITEMSIZES = {
    code: np.dtype(helper.tensor_dtype_to_np_dtype(code)).itemsize
    for code in (
        onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT8,
        onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.UINT8,
        onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL,
    )
}  # fmt: skip


def needs_external_data(proto: onnx.ModelProto, threshold: int | None = None) -> bool:
    """Whether ``proto``'s weights are over ``threshold`` (default ``EXTERNAL_DATA_THRESHOLD``)."""
    return weight_bytes(proto) > (EXTERNAL_DATA_THRESHOLD if threshold is None else threshold)


def copy_fields(target, source, keep=lambda field: True) -> None:
    """Copy the set fields of protobuf message ``source`` for which ``keep(field)`` holds into
    ``target``. A field not kept is never read: upb hands out a copy of a bytes field (a
    tensor's ``raw_data``) on every access. Unknown fields are not copied."""
    for field in source.DESCRIPTOR.fields:
        if not keep(field):
            continue
        # protobuf 6+ has is_repeated, and newer ones drop label
        if field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED:
            getattr(target, field.name).extend(getattr(source, field.name))
        elif not source.HasField(field.name):
            continue
        elif field.type == field.TYPE_MESSAGE:
            getattr(target, field.name).CopyFrom(getattr(source, field.name))
        else:
            setattr(target, field.name, getattr(source, field.name))


def _external_tensor(tensor: TensorProto, data, location: str, offset: int) -> TensorProto:
    """``tensor``'s bytes appended to ``data``; returns the tensor pointing there."""
    raw = tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()
    data.write(raw)
    moved = TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
    moved.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
        entry = moved.external_data.add()
        entry.key, entry.value = key, value
    return moved


def write_with_external_data(proto: onnx.ModelProto, path: str | os.PathLike, location: str | None = None) -> Path:
    """Write ``proto`` as the graph file ``path`` and its initializers of ``MIN_EXTERNAL_BYTES`` or
    more as the data file ``location`` (a name relative to ``path``'s folder; default
    ``<path's name>.data``), streamed one tensor at a time; returns the data file's path.

    Not atomic by itself: callers write into a staging folder and rename (``irtool.atomic``).
    """
    path = Path(path)
    location = location or f"{path.name}.data"
    skeleton = onnx.ModelProto()
    copy_fields(skeleton, proto, lambda field: field.name != "graph")
    copy_fields(skeleton.graph, proto.graph, lambda field: field.name != "initializer")
    offset = 0
    data_path = path.parent / location
    with open(data_path, "wb") as data:
        for tensor in proto.graph.initializer:
            nbytes = len(tensor.raw_data) if tensor.HasField("raw_data") else tensor.ByteSize()
            if tensor.data_type == TensorProto.STRING or nbytes < MIN_EXTERNAL_BYTES:
                skeleton.graph.initializer.add().CopyFrom(tensor)
                continue
            moved = _external_tensor(tensor, data, location, offset)
            offset += int(moved.external_data[2].value)
            skeleton.graph.initializer.append(moved)
    path.write_bytes(skeleton.SerializeToString(deterministic=True))
    return data_path
