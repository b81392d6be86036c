"""``load``: an ONNX file (or ``ModelProto``) as an irtool model, one layer per ONNX node.

The walk is the inverse of the lowering: graph inputs become ``Input``s, each node becomes an
``OnnxNode`` layer called on its input tensors (its converter records irtool primitives), float
initializers become the layers' weights, and the graph outputs are the model's outputs, under
their ONNX names. What is known at import time is folded instead of becoming a layer: ``Constant``
nodes, shape arithmetic on static shapes (``Shape``, ``Gather`` on it, ``Concat``...), and nodes
computed from initializers alone (torch's ``Transpose`` of a ``Linear`` weight: the transposed
weight is what the consumer stores and trains).
"""

from __future__ import annotations

import collections
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from irtool.importer import convert_basic, convert_nn, convert_rnn, dynamic_shapes  # noqa: F401 - they register their converters
from irtool.importer.imported_model import ImportedModel
from irtool.importer.node_layer import OnnxNode
from irtool.importer.registry import CONVERTERS, NodeInputs, OnnxImportError, PendingWeight
from irtool.ir.naming import UniqueNamer
from irtool.layers.input_layer import Input

#: The oldest opset the converters are written for; older models are upgraded to it first.
MIN_OPSET = 13
#: Ops that are only ever folded at import time (their results must be static).
FOLDED_ONLY = ("Constant", "Shape", "Size", "ConstantOfShape", "Range")


class UnsupportedOpsError(OnnxImportError):
    """The graph uses ONNX op types the importer has no converter for; lists every one with its count."""

    def __init__(self, source: str, counts: dict):
        self.counts = dict(counts)
        listed = ", ".join(f"{op} ({n})" for op, n in sorted(counts.items()))
        super().__init__(
            f"Cannot import {source}: {len(counts)} unsupported ONNX op type{'s' if len(counts) > 1 else ''}: "
            f"{listed}. irtool.importer.SUPPORTED_OPS lists what the importer maps onto irtool's primitives."
        )


def supported_ops() -> list:
    return sorted({*CONVERTERS, *FOLDED_ONLY})


def unsupported_ops(proto: onnx.ModelProto) -> dict:
    """``{op_type: count}`` of the nodes the importer cannot map (other domains as ``domain::op``)."""
    counts: collections.Counter = collections.Counter()
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            counts[f"{node.domain}::{node.op_type}"] += 1
        elif node.op_type not in CONVERTERS and node.op_type not in FOLDED_ONLY:
            counts[node.op_type] += 1
    return dict(counts)


def load(source, name: str | None = None) -> ImportedModel:
    """An ONNX model (a path or a ``ModelProto``) as an irtool model.

        model = irtool.importer.load("resnet.onnx")
        model.summary(); model.predict(x); model.fit(x, y); model.export("again.onnx")

    Raises ``UnsupportedOpsError`` naming every op type it cannot map, ``OnnxImportError`` for a
    node it cannot convert (with the node's name, op type and shapes).
    """
    where = str(source) if isinstance(source, (str, os.PathLike)) else "the ONNX model"
    proto = _read(source, where) if isinstance(source, (str, os.PathLike)) else source
    proto = _upgraded(proto, where)
    counts = unsupported_ops(proto)
    if counts:
        raise UnsupportedOpsError(where, counts)
    return _GraphReader(proto, where).model(name)


def _read(path, where: str) -> onnx.ModelProto:
    try:
        proto = onnx.load(os.fspath(path))
    except OSError:
        raise
    except Exception as error:  # protobuf's DecodeError, onnx's checks of external data paths
        reason = " ".join(str(error).split())
        raise OnnxImportError(f"{where} is not a readable ONNX model ({type(error).__name__}: {reason})") from error
    # Protobuf parses an empty file, and many short byte strings, as a valid empty message.
    if not proto.HasField("graph"):
        raise OnnxImportError(f"{where} is not a readable ONNX model (it holds no graph)")
    return proto


def _upgraded(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset >= MIN_OPSET:
        return proto
    try:
        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as error:  # the converter raises bare RuntimeErrors from C++
        raise OnnxImportError(f"Cannot upgrade {where} from opset {opset} to {MIN_OPSET}: {error}") from error


def _attributes(node) -> dict:
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        elif isinstance(value, onnx.GraphProto) or (isinstance(value, list) and value and not np.isscalar(value[0])):
            raise OnnxImportError(f"ONNX node '{node.name}' ({node.op_type}): graph attributes are not supported")
        values[attribute.name] = value
    return values


def _dims(value_info) -> tuple:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def _layer_name(text: str | bytes) -> str:
    # Layer names cannot hold "/" (it separates scopes); torch's "/conv1/Conv" reads "conv1.Conv".
    if isinstance(text, bytes):  # protobuf hands over a name that is not valid UTF-8 as bytes
        text = text.decode("utf-8", "replace")
    return text.strip("/").replace("/", ".")


class _GraphReader:
    def __init__(self, proto: onnx.ModelProto, where: str):
        self.proto = proto
        self.where = where
        self.graph = proto.graph
        self.layer_names = UniqueNamer()
        self.shared_weights: dict = {}
        self.node_classes: dict = {}

    def _initializer(self, tensor: onnx.TensorProto) -> np.ndarray:
        # onnx raises a bare KeyError for an unknown data type and ValueError for data that does not fill its dims.
        try:
            return numpy_helper.to_array(tensor)
        except (KeyError, ValueError, TypeError) as error:
            raise OnnxImportError(
                f"Cannot import {self.where}: initializer {tensor.name!r} (data type {tensor.data_type}, dims "
                f"{list(tensor.dims)}) cannot be read: {type(error).__name__}: {error}"
            ) from error

    def model(self, name: str | None) -> ImportedModel:
        initializers = {t.name: self._initializer(t) for t in self.graph.initializer}
        env: dict = {}
        for tensor_name, array in initializers.items():
            is_weight = np.issubdtype(array.dtype, np.floating)
            env[tensor_name] = PendingWeight(tensor_name, array) if is_weight else array
        inputs = []
        for value_info in self.graph.input:
            if value_info.name in initializers:
                continue  # IR < 4 lists initializers among the inputs
            elem = value_info.type.tensor_type.elem_type
            tensor = Input(
                batch_shape=_dims(value_info),
                dtype=str(helper.tensor_dtype_to_np_dtype(elem)),
                name=self.layer_names(_layer_name(value_info.name)),
            )
            env[value_info.name] = tensor
            inputs.append(tensor)
        for index, node in enumerate(self.graph.node):
            self._read_node(index, node, env)
        outputs = []
        for value_info in self.graph.output:
            value = env.get(value_info.name)
            if not hasattr(value, "_keras_history") or value in inputs:
                raise OnnxImportError(
                    f"Cannot import {self.where}: graph output '{value_info.name}' is a constant or a graph input, "
                    "not computed by a node"
                )
            outputs.append(value)
        tensors = {k: v for k, v in env.items() if hasattr(v, "_keras_history")}
        return ImportedModel(
            inputs,
            outputs,
            onnx_tensors=tensors,
            onnx_output_names=[v.name for v in self.graph.output],
            name=name or _layer_name(self.graph.name or "onnx_model") or "onnx_model",
        )

    def _read_node(self, index: int, node, env: dict) -> None:
        attributes = _attributes(node)
        values = []
        for name in node.input:
            if name and name not in env:
                raise OnnxImportError(
                    f"ONNX node '{node.name}' ({node.op_type}): input '{name}' is neither a graph input, an "
                    "initializer nor an earlier node's output"
                )
            values.append(env[name] if name else None)
        symbolic = [v for v in values if hasattr(v, "_keras_history")]
        if any(dynamic_shapes.is_dynamic(v) for v in values):
            results = self._read_dynamic(index, node, values, attributes)
        elif not symbolic or node.op_type in FOLDED_ONLY:
            results = self._fold(node, values, attributes)
        else:
            results = self._call_layer(index, node, values, attributes)
        for name, result in zip(node.output, results):
            if name:
                env[name] = result

    def _read_dynamic(self, index, node, values, attributes) -> list:
        """A node reading a shape computed from run-time dims (see ``dynamic_shapes``)."""
        if node.op_type == "Reshape" and hasattr(values[0], "_keras_history"):
            target = dynamic_shapes.reshape_target(node, values[0], values[1], attributes.get("allowzero", 0))
            return self._call_layer(index, node, [values[0], target, *values[2:]], attributes)
        if node.op_type in ("Expand", "ConstantOfShape"):
            return self._call_layer(index, node, values, attributes)
        return dynamic_shapes.fold(node, values, attributes)

    def _call_layer(self, index, node, values, attributes) -> list:
        conv = CONVERTERS[node.op_type]
        plan = []
        tensors = []
        for i, value in enumerate(values):
            if hasattr(value, "_keras_history"):
                plan.append("tensor")
                tensors.append(value)
            elif isinstance(value, PendingWeight) and i in conv.static:
                plan.append(value.array)
            elif dynamic_shapes.is_dynamic(value):  # its run-time dims come from tensors the layer is called on
                plan.append(value.unbound())
                tensors.extend(ref.tensor for ref in value.refs())
            else:
                plan.append(value)
        name = self.layer_names(_layer_name(node.name) or f"{node.op_type.lower()}_{index}")
        cls = self.node_classes.get(node.op_type)
        if cls is None:
            cls = self.node_classes[node.op_type] = type(node.op_type, (OnnxNode,), {"__module__": __name__})
        layer = cls(node.op_type, attributes, plan, name, len(node.output), shared_weights=self.shared_weights)
        outputs = layer(tensors)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    def _fold(self, node, values, attributes) -> list:
        """Compute a node whose inputs are all known now; float results of weights stay weights."""
        if node.op_type == "Constant":
            return [_constant_value(node, attributes)]
        arrays = [v.array if isinstance(v, PendingWeight) else v for v in values]
        if node.op_type == "Shape":
            return [dynamic_shapes.shape_of(arrays[0], attributes.get("start", 0), attributes.get("end"))]
        if node.op_type == "Size":
            dims = values[0].shape
            if any(d is None for d in dims):
                raise OnnxImportError(
                    f"ONNX node '{node.name}' ({node.op_type}): the shape {tuple(dims)} of its input has unknown dims; "
                    "the importer folds shape arithmetic and needs static shapes (export with fixed sizes)"
                )
            return [np.asarray(np.prod(np.asarray(dims, np.int64)), np.int64)]
        if node.op_type == "ConstantOfShape":
            fill = attributes.get("value", np.zeros(1, np.float32))
            return [np.full([int(d) for d in arrays[0]], fill.reshape(-1)[0], fill.dtype)]
        if node.op_type == "Range":
            start, limit, delta = (a.item() for a in arrays)
            return [np.arange(start, limit, delta, dtype=arrays[0].dtype)]
        conv = CONVERTERS[node.op_type]
        inputs = NodeInputs(_layer_name(node.name) or node.op_type, node.op_type, arrays, num_outputs=len(node.output))
        results = conv.fn(inputs, **{**conv.defaults, **attributes})
        results = results if isinstance(results, (list, tuple)) else [results]
        from_weights = any(isinstance(v, PendingWeight) for v in values)
        folded = []
        for name, result in zip(node.output, results):
            array = np.asarray(result)
            is_weight = from_weights and np.issubdtype(array.dtype, np.floating)
            folded.append(PendingWeight(name, array) if is_weight else array)
        return folded


def _constant_value(node, attributes) -> np.ndarray:
    for key, dtype in (
        ("value", None),
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attributes:
            value = attributes[key]
            return value if dtype is None else np.asarray(value, dtype)
    raise OnnxImportError(f"ONNX node '{node.name}' (Constant): unsupported value attribute {sorted(attributes)}")
