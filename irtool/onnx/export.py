"""Lowering a model's graph to an ONNX ``ModelProto``, validating it, writing it atomically.

The pipeline: name the graph inputs (Keras tensor names) and outputs (output layer names),
store every weight once as an initializer, let each primitive's ``to_onnx`` rule emit its
nodes in the graph's topological order, drop pass-through ``Identity`` nodes, then check
the result with ``onnx.checker`` and strict shape inference (which also supplies the
``value_info``). The IR version is the lowest the opset needs, so files load in older
runtimes too.
"""

from __future__ import annotations

import math
import os
import weakref
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import unknown_fields
from onnx import helper

from irtool.atomic import move_into, replacing, staging
from irtool.ir.gc_pause import gc_paused
from irtool.ir.graph import Graph
from irtool.onnx.context import LoweringContext, LoweringError, fill_tensor, fill_tensors, tensor_type
from irtool.onnx.external_data import copy_fields, needs_external_data, raw_data_size, write_with_external_data
from irtool.onnx.layout import channels_first, has_channels_last_ops
from irtool.ops.fusion import fuse_matmul_add
from irtool.version import __version__

DEFAULT_OPSET = 21
MIN_OPSET = 13


class ExportError(ValueError):
    """Export failed; the message names the stage (lowering, checker, shape inference)."""


def default_opset() -> int:
    """A well-supported opset: 21 (onnxruntime >= 1.20), capped by what ``onnx`` knows."""
    return min(DEFAULT_OPSET, onnx.defs.onnx_opset_version())


def to_onnx(model, opset: int | None = None, check: bool = True) -> onnx.ModelProto:
    """Lower ``model`` (a functional model) to a validated ``onnx.ModelProto``."""
    with gc_paused():  # the model's first export makes its fused graph: pause the collector for both
        graph = getattr(model, "inference_graph", None)
        if graph is None:
            raise ExportError(
                f"Model '{model.name}' has no graph to export: build it first (give it an Input, or call it on "
                "data), or use a functional model."
            )
        prepared = _PREPARED.get(graph)
        if prepared is None:
            prepared = _prepare(graph)
            if prepared is not graph:  # a value that is its key would keep it alive forever
                _PREPARED[graph] = prepared
        doc_string = f"{model.class_name} model '{model.name}' exported by irtool {__version__}"
        return _lower(prepared, opset, check, model.name, list(model.output_names), doc_string, prepared=True)


# A model's inference graph does not change once made (``Functional.inference_graph``), so the graph
# the layout and fusion passes make from it is kept while it lives: a model's later exports only
# lower. Weights are read at lowering (``Graph.constant_array``), so every export has current values.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepare(graph: Graph) -> Graph:
    """``graph`` as the lowering wants it: channels-first spatial ops, each Dense's ``matmul`` + ``add`` fused."""
    if has_channels_last_ops(graph):
        return fuse_matmul_add(channels_first(graph), in_place=True)  # the layout pass made a new graph
    return fuse_matmul_add(graph)


def lower(
    graph: Graph,
    opset: int | None = None,
    check: bool = True,
    name: str = "graph",
    output_names: list | None = None,
    doc_string: str = "",
    input_names: list | None = None,
) -> onnx.ModelProto:
    """Lower any ``ir.Graph`` (a model's, a subgraph, a cut) to a validated ``onnx.ModelProto``.

    Graph inputs are named ``input_names`` (default: their value names), outputs are named ``output_names`` (default: their
    value names). Channels-last spatial ops are converted first (``layout.channels_first``),
    then ``matmul``+``add`` pairs become ``Gemm`` (``ops.fusion.fuse_matmul_add``).
    """
    with gc_paused():
        return _lower(graph, opset, check, name, output_names, doc_string, input_names)


def _lower(graph, opset, check, model_name, output_names, doc_string, input_names=None, prepared=False):
    opset = default_opset() if opset is None else int(opset)
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset {opset} is not supported: choose one in [{MIN_OPSET}, {newest}].")
    if output_names is None:
        output_names = [graph.name(v) for v in graph.outputs]
    if not prepared:
        graph = _prepare(graph)
    ctx = LoweringContext(opset)
    names: dict = {}

    if input_names is None:
        input_names = [graph.name(v) for v in graph.inputs]
    input_protos = []
    for i, v in enumerate(graph.inputs):
        name = ctx.unique(input_names[i])
        names[v] = name
        spec = graph.spec(v)
        dims = ["batch" if j == 0 else f"dim_{i}_{j}" for j in range(len(spec.shape))]
        input_protos.append(helper.make_value_info(name, tensor_type(spec.dtype, spec.shape, dims)))
        ctx.dtypes[name] = spec.dtype
        ctx.shapes[name] = tuple(spec.shape)

    final: dict = {}
    for v, name in zip(graph.outputs, output_names):
        if v in final or v in names:
            continue
        final[v] = ctx.unique(name)

    for v in graph.values("weight"):
        name = ctx.unique(graph.name(v))
        names[v] = name
        ctx.add_initializer(name, graph.constant_array(v))

    try:
        ctx.lower_ops(graph, names, final)
    except LoweringError as error:
        raise ExportError(f"Lowering failed: {error}") from None

    output_protos = []
    ctx.scope = "output"
    for i, (v, name) in enumerate(zip(graph.outputs, output_names)):
        if final.get(v) is None or i != graph.outputs.index(v):
            # The output is a model input or repeats an earlier output: give it its own name.
            source = names[v]
            name = ctx.unique(name)
            ctx.node("Identity", [source], [name])
        else:
            name = final[v]
        spec = graph.spec(v)
        output_protos.append(
            helper.make_value_info(name, tensor_type(spec.dtype, spec.shape, [None] * len(spec.shape)))
        )

    # Values that If/Loop/Scan subgraphs read from the outer scope are kept under their names, as outputs are.
    keep = {p.name for p in output_protos} | {name for node in ctx.nodes for name in outer_references(node)}
    nodes = _drop_dead(_drop_identities(_merge_transposes(ctx.nodes, keep), keep), keep)
    # Weights folded at lowering (a Conv kernel permuted to ONNX's layout) leave their Keras-layout
    # originals unused: store only what some node or output reads.
    used = {name for node in nodes for name in node.input} | keep
    initializers = {name: array for name, array in ctx.initializers.items() if name in used}
    onnx_graph = helper.make_graph(nodes, model_name, input_protos, output_protos, doc_string=doc_string)
    opset_import = [helper.make_opsetid("", opset)]
    opset_import += [helper.make_opsetid(domain, version) for domain, version in sorted(ctx.domains.items())]
    proto = helper.make_model(
        onnx_graph,
        opset_imports=opset_import,
        producer_name="irtool",
        producer_version=__version__,
        ir_version=helper.find_min_ir_version_for(opset_import),
        doc_string=f"irtool export of '{model_name}'",
    )
    helper.set_model_props(proto, {"irtool.version": __version__, "irtool.model_name": model_name})
    if check:
        # The skeleton is made before the weights exist as protobuf bytes, from the arrays' sizes.
        _check(_skeleton_of(proto, initializers), proto)
    # The weights go into the model last and in place (``make_model`` would copy a graph that held them).
    fill_tensors(proto.graph.initializer, initializers)
    return proto


def outer_references(node) -> set:
    """The names ``node``'s subgraphs (If branches, Loop/Scan bodies, nested) read from outside
    themselves: inputs in all but name, which the peepholes must keep."""
    refs: set = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            local.update(name for n in g.node for name in n.output)
            for n in g.node:
                refs.update(name for name in n.input if name and name not in local)
                refs.update(outer_references(n) - local)
            refs.update(o.name for o in g.output if o.name not in local)
    return refs


SKELETON_MAX_BYTES = 1024


def validate(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Run ``onnx.checker`` and strict shape inference (together what ``full_check=True``
    does); return ``proto`` with the inferred ``value_info`` and output shapes added.

    Both run on a *skeleton* of the model in which large initializers are replaced by typed
    graph inputs: the checks look at types, shapes and wiring, not at weight bytes, so this
    keeps validation cost independent of model size (a 16 MB model would otherwise be
    serialized and parsed several times). Small initializers (shape tensors, axes) stay, so
    data propagation still sees their values.
    """
    graph = proto.graph
    small = [t for t in graph.initializer if _nbytes(t) <= SKELETON_MAX_BYTES]
    large = [
        helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
        if _nbytes(t) > SKELETON_MAX_BYTES
    ]
    skeleton_graph = helper.make_graph(
        graph.node, graph.name, list(graph.input) + large, graph.output, initializer=small
    )
    skeleton = helper.make_model(
        skeleton_graph, opset_imports=proto.opset_import, ir_version=proto.ir_version, producer_name="irtool"
    )
    _check(skeleton, proto)
    return proto


def _check(skeleton: onnx.ModelProto, proto: onnx.ModelProto) -> None:
    """Check ``skeleton`` (``proto`` less its large initializers) and give ``proto`` the shapes inferred on it."""
    blob = skeleton.SerializeToString()
    try:
        onnx.checker.check_model(blob)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"onnx.checker rejected the exported model: {error}") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(blob, check_type=True, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as error:
        raise ExportError(f"ONNX shape inference failed on the exported model: {error}") from None
    if isinstance(inferred, bytes):
        inferred = onnx.ModelProto.FromString(inferred)
    # Weights, including those the skeleton made inputs, get no value_info.
    weight_names = {i.name for i in skeleton.graph.initializer}
    weight_names |= {i.name for i in skeleton.graph.input} - {i.name for i in proto.graph.input}
    proto.graph.value_info.extend(v for v in inferred.graph.value_info if v.name not in weight_names)
    del proto.graph.output[:]
    proto.graph.output.extend(inferred.graph.output)


def _skeleton_of(proto: onnx.ModelProto, initializers: dict) -> onnx.ModelProto:
    """The skeleton of ``proto`` (which has no initializers yet) with ``initializers`` (name -> array):
    small ones as initializers (data propagation reads shape tensors and axes), large ones as typed inputs."""
    skeleton = onnx.ModelProto()
    skeleton.ir_version = proto.ir_version
    skeleton.producer_name = "irtool"
    skeleton.opset_import.extend(proto.opset_import)
    graph = skeleton.graph
    graph.node.extend(proto.graph.node)
    graph.name = proto.graph.name
    graph.input.extend(proto.graph.input)
    graph.output.extend(proto.graph.output)
    for name, array in initializers.items():
        array = np.asarray(array)
        if array.dtype.kind in "OUS" or array.nbytes <= SKELETON_MAX_BYTES:
            fill_tensor(graph.initializer.add(), name, array)
        else:
            dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
            graph.input.append(helper.make_tensor_value_info(name, dtype, list(array.shape)))
    return skeleton


def _nbytes(tensor: onnx.TensorProto) -> int:
    """The size of ``tensor``'s ``raw_data``, from its dims and type: reading ``raw_data`` would copy
    it (upb hands out a new ``bytes``). Packed 4-bit types count a byte per element (so more)."""
    if not tensor.HasField("raw_data"):
        return 0
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return len(tensor.raw_data)
    return math.prod(tensor.dims) * itemsize


def _drop_dead(nodes: list, keep: set) -> list:
    """Remove nodes none of whose outputs reach a graph output (e.g. a mask nobody reads)."""
    live = set(keep)
    out = []
    for node in reversed(nodes):
        if any(name in live for name in node.output):
            live.update(node.input)
            out.append(node)
    return out[::-1]


def _merge_transposes(nodes: list, keep: set) -> list:
    """``Transpose(p2)`` of a single-use ``Transpose(p1)`` becomes one Transpose (or an Identity,
    dropped later, when they cancel): where a layout boundary meets an op's own transpose."""
    consumers: dict = {}
    for node in nodes:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producer = {}
    out, dropped = [], set()
    for node in nodes:
        if node.op_type == "Transpose":
            first = producer.get(node.input[0])
            if first is not None and consumers.get(node.input[0]) == 1 and node.input[0] not in keep:
                p1 = list(helper.get_attribute_value(first.attribute[0]))
                p2 = list(helper.get_attribute_value(node.attribute[0]))
                perm = [p1[i] for i in p2]
                dropped.add(id(first))
                if perm == list(range(len(perm))):
                    node = helper.make_node("Identity", [first.input[0]], list(node.output), name=node.name)
                else:
                    node = helper.make_node("Transpose", [first.input[0]], list(node.output), name=node.name, perm=perm)
            producer[node.output[0]] = node if node.op_type == "Transpose" else None
        out.append(node)
    return [n for n in out if id(n) not in dropped]


def _drop_identities(nodes: list, keep: set) -> list:
    """Remove Identity nodes whose output is not a graph output, rewiring their consumers."""
    alias: dict = {}
    out = []
    for node in nodes:
        inputs = [alias.get(x, x) for x in node.input]
        if node.op_type == "Identity" and node.output[0] not in keep:
            alias[node.output[0]] = inputs[0]
            continue
        if list(node.input) != inputs:
            del node.input[:]
            node.input.extend(inputs)
        out.append(node)
    # An Identity that only renames a node's single-use result to a graph output: let the
    # producer write the output directly.
    consumers: dict = {}
    for node in out:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producer = {name: node for node in out for name in node.output}
    final = []
    for node in out:
        source = node.input[0] if node.op_type == "Identity" else None
        maker = producer.get(source)
        if maker is not None and consumers.get(source) == 1 and source not in keep and node.output[0] in keep:
            outputs = [node.output[0] if name == source else name for name in maker.output]
            del maker.output[:]
            maker.output.extend(outputs)
            continue
        final.append(node)
    return final


def save_onnx(proto: onnx.ModelProto, path, external_data: bool | None = None) -> None:
    """Write ``proto`` to ``path`` atomically (temp file in the same folder, then rename).

    The bytes are ``proto.SerializeToString(deterministic=True)``, written in pieces
    (``serialized_pieces``) so that no second copy of all the weights is ever held in memory.
    With ``external_data`` (default: when the weights are too large for one protobuf message,
    ``external_data.needs_external_data``) the weights go to ``<file name>.data`` beside it,
    streamed a tensor at a time; both files are staged and renamed, the data file first.
    """
    path = Path(os.path.abspath(os.fspath(path)))
    if external_data is None:
        external_data = needs_external_data(proto)
    if not external_data:
        with replacing(path) as tmp, open(tmp, "wb") as f:
            for piece in serialized_pieces(proto):
                f.write(piece)
        return
    with staging(path.parent, path.name) as stage:
        write_with_external_data(proto, stage / path.name)
        move_into(stage, path.parent, last=path.name)


# Field numbers in onnx.proto: ModelProto.graph, GraphProto.initializer.
_GRAPH_FIELD = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_INITIALIZER_FIELD = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number


def serialized_pieces(proto):
    """``proto.SerializeToString(deterministic=True)`` as a sequence of byte strings, one per
    initializer plus the few around them, so a large model is never serialized in one piece.

    Protobuf writes a message's fields in field-number order, each as ``tag, [length,] value``,
    so the model's bytes are its fields before ``graph``, the graph as a length-delimited field
    (its fields before ``initializer``, one field per initializer, the fields after), then the
    model's fields after ``graph``; the tests compare the joined pieces with ``SerializeToString``.
    """
    if (
        not isinstance(proto, onnx.ModelProto)
        or not proto.HasField("graph")
        or not proto.graph.initializer
        or unknown_fields.UnknownFieldSet(proto)  # fields a newer onnx wrote: ``ListFields`` cannot copy them
        or unknown_fields.UnknownFieldSet(proto.graph)
    ):
        yield proto.SerializeToString(deterministic=True)
        return
    model_before, model_after = _split_fields(proto, onnx.ModelProto, _GRAPH_FIELD)
    graph_before, graph_after = _split_fields(proto.graph, onnx.GraphProto, _INITIALIZER_FIELD)
    tag = _varint(_INITIALIZER_FIELD << 3 | 2)  # wire type 2: length-delimited
    sizes = [tensor_size(tensor) for tensor in proto.graph.initializer]
    graph_size = len(graph_before) + len(graph_after) + sum(len(tag) + len(_varint(n)) + n for n in sizes)
    yield model_before + _varint(_GRAPH_FIELD << 3 | 2) + _varint(graph_size) + graph_before
    for tensor, size in zip(proto.graph.initializer, sizes):
        yield tag + _varint(size)
        data = tensor.SerializeToString(deterministic=True)
        if len(data) != size:  # cannot happen for a tensor whose raw_data fits its dims; never write a bad length
            raise ValueError(f"Initializer {tensor.name!r} serializes to {len(data)} bytes, not the {size} computed.")
        yield data
    yield graph_after + model_after


_RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"]


def tensor_size(tensor: onnx.TensorProto) -> int:
    """``tensor.ByteSize()`` without copying its ``raw_data``: upb's ``ByteSize`` serializes the
    whole message (measured: 42 ms of a 430 ms ResNet50 export), and reading ``raw_data`` copies
    it too. The raw bytes' length is the dims' product times the element size; the other fields
    are measured on a copy without them. ``serialized_pieces`` checks the result as it writes."""
    n = raw_data_size(tensor)
    if n is None or unknown_fields.UnknownFieldSet(tensor):
        return tensor.ByteSize()
    shell = onnx.TensorProto()
    copy_fields(shell, tensor, lambda field: field is not _RAW_DATA)
    return shell.ByteSize() + len(_varint(_RAW_DATA.number << 3 | 2)) + len(_varint(n)) + n


def _split_fields(message, cls, number: int) -> tuple[bytes, bytes]:
    """The serialized fields of ``message`` numbered below and above ``number`` (which is left out)."""
    before, after = cls(), cls()
    copy_fields(before, message, lambda field: field.number < number)
    copy_fields(after, message, lambda field: field.number > number)
    return before.SerializeToString(deterministic=True), after.SerializeToString(deterministic=True)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def export_onnx(model, filepath, opset: int | None = None, check: bool = True) -> onnx.ModelProto:
    """Lower, validate and atomically write ``model`` to ``filepath``; returns the proto.

    >>> model.export("model.onnx")  # doctest: +SKIP
    """
    proto = to_onnx(model, opset=opset, check=check)
    save_onnx(proto, filepath)
    return proto
