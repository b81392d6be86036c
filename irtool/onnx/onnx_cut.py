"""Cutting any ONNX model at named tensors: a feature extractor that keeps what the file says about itself.

    cut = cut_onnx(*load_source("resnet.onnx"), outputs=["pool5"])   # a Cut; cut.to_proto(), save_cut(cut, path)

``irtool.onnx.extract`` is the public entry point (it also takes irtool models). Names are tensor names, or node names (which stand for the node's outputs). The graph surgery
is done on ``onnx_ir`` (the ONNX project's in-memory IR): ``ir.load`` reads external data
lazily (memory-mapped, so a 2 GB model is not read to be cut), its use-def chains give the
nodes between the cut points, and ``ir.save(..., external_data=...)`` writes the cut's weights
the same way. Unlike ``onnx.utils.extract_model`` the cut keeps the opset imports, metadata
(plus ``irtool.extracted_from`` and the cut points), doc strings, producer, symbolic dims,
value_info, and only the initializers and functions it reads; it needs no value_info in the file
(ONNX shape inference supplies the types of the cut points when the file lacks them), and it
refuses to cut inside an If/Loop/Scan body, whose values exist once per iteration or branch.

irtool models are cut in their own graph before lowering (``irtool.onnx.extraction``); both
paths meet in ``Cut``, which ``save_cut`` writes atomically and checks with ``onnx.checker``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedFunctionsPass, ShapeInferencePass

from irtool.atomic import move_into, staging
from irtool.version import __version__

#: metadata_props keys the cut adds (the source's own keys are kept).
EXTRACTED_FROM = "irtool.extracted_from"
EXTRACTED_INPUTS = "irtool.extracted_inputs"
EXTRACTED_OUTPUTS = "irtool.extracted_outputs"

#: A cut whose weights exceed this is written with external data even when the source had none:
#: a protobuf message cannot exceed 2 GiB.
EXTERNAL_DATA_BYTES = 1 << 30

#: What ``load_source`` takes: a path to an .onnx file, a ``ModelProto``, an ``onnx_ir.Model``.
OnnxSource = str | os.PathLike | onnx.ModelProto | ir.Model


class ExtractError(ValueError):
    """A cut that cannot be made; the message names the tensor, what was expected and the fix."""


@dataclass(frozen=True)
class CutPoint:
    """A name one may cut at: a graph input, a node's output tensor or a layer's output."""

    name: str
    kind: str  # "input", "tensor" (an ONNX node's output) or "layer"
    producer: str  # the op type or layer class that computes it ("" for inputs)
    dtype: str | None
    shape: tuple | None  # ints, symbolic names, None for unknown dims; None when the rank is unknown

    @property
    def shape_text(self) -> str:
        if self.shape is None:
            return "?"
        return (
            "("
            + ", ".join("?" if d is None else str(d) for d in self.shape)
            + ("," if len(self.shape) == 1 else "")
            + ")"
        )


@dataclass
class Cut:
    """A cut model (``model``, an ``onnx_ir.Model``) and, for ``--check``, a way to get the whole
    source model with the cut's inputs and outputs exposed as extra graph outputs, under the cut's
    names (``exposed()``), so both can be run on the same inputs and compared."""

    model: ir.Model
    exposed: Callable[[], ir.Model]
    source: str

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.model.graph.inputs if not v.is_initializer()]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.model.graph.outputs]

    def to_proto(self) -> onnx.ModelProto:
        """The cut as a ``ModelProto``; tensors of a file with external data stay references to it."""
        return ir.serde.serialize_model(self.model)

    def exposed_proto(self) -> tuple[onnx.ModelProto, str | None]:
        """``exposed()`` as a ``ModelProto``, and the folder its external weights are relative to
        (``None`` when it has none): the source's weights stay where they are, to be mapped from there."""
        full = self.exposed()
        folders = (v.const_value.base_dir for v in full.graph.initializers.values() if _is_external(v))
        return ir.serde.serialize_model(full), next(folders, None)


def load_source(source: OnnxSource) -> tuple[ir.Model, str]:
    """``(onnx_ir model, the name it is known by)``; a file's external data is mapped, not read."""
    if isinstance(source, ir.Model):
        return source, source.graph.name or "model"
    if isinstance(source, onnx.ModelProto):
        return ir.serde.deserialize_model(source), source.graph.name or "model"
    path = Path(source)
    if not path.is_file():
        raise ExtractError(f"no such ONNX file: {source}")
    try:
        model = ir.load(path)
    except Exception as error:
        reason = " ".join(str(error).split())
        raise ExtractError(f"{source} is not a readable ONNX model ({type(error).__name__}: {reason})") from error
    # Protobuf parses an empty file, and many short byte strings, as a valid empty model.
    if not len(model.graph) and not model.graph.inputs and not model.graph.outputs:
        raise ExtractError(f"{source} is not a readable ONNX model (it holds no graph)")
    for value in model.graph.initializers.values():  # mapped only when written: say it now
        if _is_external(value) and not Path(value.const_value.path).is_file():
            raise ExtractError(
                f"{source} keeps its weights in {value.const_value.location}, which is not in "
                f"{value.const_value.base_dir} (initializer '{value.name}')"
            )
    return model, path.name


# -- resolving names -------------------------------------------------------------------------------
def _subgraph_owners(graph: ir.Graph) -> dict[str, str]:
    """Names of values and nodes inside If/Loop/Scan bodies -> "the 'body' of Loop node 'x'"."""
    owners: dict[str, str] = {}
    for node in ir.traversal.RecursiveGraphIterator(graph):
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                bodies = [attr.as_graph()]
            elif attr.type == ir.AttributeType.GRAPHS:
                bodies = list(attr.as_graphs())
            else:
                continue
            where = f"the '{attr.name}' graph of {node.op_type} node '{node.name}'"
            for body in bodies:
                for inner in ir.traversal.RecursiveGraphIterator(body):
                    owners.setdefault(inner.name or "", where)
                    for value in inner.outputs:
                        owners.setdefault(value.name or "", where)
                for value in body.inputs:
                    owners.setdefault(value.name or "", where)
    owners.pop("", None)
    return owners


def resolve(graph: ir.Graph, names: Sequence[str], role: str, source: str) -> list[ir.Value]:
    """The main-graph values ``names`` stand for: a tensor name, or a node name (its outputs)."""
    values = ir.convenience.create_value_mapping(graph, include_subgraphs=False)
    nodes = {node.name: node for node in graph if node.name}
    owners = None
    found: list[ir.Value] = []
    for name in names:
        if name in values:
            found.append(values[name])
        elif name in nodes:
            found.extend(v for v in nodes[name].outputs if v.name)
        else:
            owners = _subgraph_owners(graph) if owners is None else owners
            if name in owners:
                raise ExtractError(
                    f"{role} '{name}' is inside {owners[name]}: a cut can only go through the main graph, "
                    f"where each tensor has one value per run; cut at that node's inputs or outputs instead"
                )
            close = difflib.get_close_matches(name, list(values) + list(nodes), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ExtractError(
                f"{role} '{name}': {source} has no tensor or node of that name{hint}; "
                f"`irtool extract {source} --list` prints the names one may cut at"
            )
    unique: list[ir.Value] = []
    for value in found:
        if value not in unique:
            unique.append(value)
    return unique


def onnx_cut_points(source: OnnxSource) -> list[CutPoint]:
    """Every main-graph tensor one may cut at: the graph inputs, then node outputs in graph order."""
    model, _ = load_source(source)
    _infer_types(model, [v for node in model.graph for v in node.outputs if v.name])
    points = [_point(v, "input", "") for v in model.graph.inputs if not v.is_initializer()]
    for node in model.graph:
        points.extend(_point(v, "tensor", node.op_type) for v in node.outputs if v.name)
    return points


def _point(value: ir.Value, kind: str, producer: str) -> CutPoint:
    shape = None if value.shape is None else tuple(_dim(d) for d in value.shape)
    dtype = None if value.dtype is None else _dtype_name(value.dtype)
    return CutPoint(value.name, kind, producer, dtype, shape)


def _dtype_name(dtype: ir.DataType) -> str:
    try:
        return str(dtype.numpy())
    except TypeError:  # no NumPy equivalent (bfloat16 without ml_dtypes, strings)
        return dtype.name.lower()


def _dim(dim) -> int | str | None:
    if isinstance(dim, int):
        return dim
    return dim.value  # a SymbolicDim: its name, or None when unnamed


def _infer_types(model: ir.Model, values: Sequence[ir.Value]) -> None:
    """Run ONNX shape inference (large initializers left out) when some of ``values`` has no type:
    files written without value_info still declare their inputs, and inference derives the rest."""
    if all(v.dtype is not None and v.shape is not None for v in values):
        return
    ShapeInferencePass(check_type=False, strict_mode=False, data_prop=True)(model)


# -- the cut ---------------------------------------------------------------------------------------
def cut_onnx(model: ir.Model, source: str, outputs: Sequence[str], inputs: Sequence[str] | None = None) -> Cut:
    """Cut the onnx-ir ``model`` (``source`` names it in messages and metadata); see ``extract``."""
    if not outputs:
        raise ExtractError("no outputs to cut at: pass one or more tensor or node names")
    graph = model.graph
    output_values = resolve(graph, outputs, "output", source)
    given_inputs = inputs is not None
    if given_inputs:
        input_values = resolve(graph, inputs, "input", source)
    else:
        input_values = [v for v in graph.inputs if not v.is_initializer()]
    for value in input_values:
        if value.is_initializer() and value not in graph.inputs:
            raise ExtractError(f"input '{value.name}' is a weight (an initializer) of {source}, not a tensor to feed")
    _infer_types(model, [*input_values, *output_values])
    for value, role in [*((v, "input") for v in input_values), *((v, "output") for v in output_values)]:
        if value.dtype is None or value.shape is None:
            made_by = (
                f" (made by {value.producer().op_type} node '{value.producer().name}')" if value.producer() else ""
            )
            raise ExtractError(
                f"{role} '{value.name}'{made_by}: {source} does not declare its "
                f"{'element type' if value.dtype is None else 'shape'} and ONNX shape inference cannot derive it, "
                "but a graph input or output needs one (onnx.checker); add it to the file's value_info or cut "
                "at a neighbouring tensor"
            )
    try:
        cut_graph = ir.convenience.extract(graph, input_values, output_values)
    except ValueError as error:
        raise ExtractError(_unbounded_message(str(error), source, given_inputs)) from None
    used = {v for node in ir.traversal.RecursiveGraphIterator(cut_graph) for v in node.inputs if v is not None}
    unread = [v for v in cut_graph.inputs if v not in used and v not in cut_graph.outputs]
    if given_inputs and unread:
        names = ", ".join(f"'{v.name}'" for v in unread)
        raise ExtractError(f"input {names}: the outputs {', '.join(outputs)} do not depend on it; leave it out")
    for value in unread:
        cut_graph.inputs.remove(value)
    # the extractor collects initializers in a set: put them back in the source's order, so cuts are reproducible
    order = {name: i for i, name in enumerate(graph.initializers)}
    kept = sorted(cut_graph.initializers.values(), key=lambda v: order.get(v.name, len(order)))
    cut_graph.initializers.clear()
    for value in kept:
        cut_graph.initializers.add(value)
    if model.ir_version < 4:  # before IR 4 every initializer had to be a graph input too
        cut_graph.inputs.extend(v for v in cut_graph.initializers.values() if v not in cut_graph.inputs)
    cut = ir.Model(
        cut_graph,
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        domain=model.domain,
        model_version=model.model_version,
        doc_string=model.doc_string,
        functions=list(model.functions.values()),
        metadata_props=dict(model.metadata_props),
    )
    RemoveUnusedFunctionsPass()(cut)
    mark_extracted(cut, source, [v.name for v in cut_graph.inputs if not v.is_initializer()], cut.graph.outputs)
    names = [v.name for v in (*input_values, *output_values)]
    return Cut(cut, lambda: expose(model, names), source)


def _unbounded_message(error: str, source: str, given_inputs: bool) -> str:
    needed = error.rsplit(":", 1)[-1].strip() if "not provided" in error else error
    if given_inputs:
        return (
            f"the outputs also depend on {needed} of {source}, which --inputs does not list: "
            "add it to the inputs, or cut the inputs further up"
        )
    return f"cannot cut {source}: {error}"


def mark_extracted(model: ir.Model, source: str, inputs: Sequence[str], outputs) -> None:
    """Record where the cut came from and where it was made, in the model's metadata_props."""
    model.metadata_props[EXTRACTED_FROM] = source
    model.metadata_props[EXTRACTED_INPUTS] = ",".join(inputs)
    model.metadata_props[EXTRACTED_OUTPUTS] = ",".join(v if isinstance(v, str) else v.name for v in outputs)
    model.metadata_props.setdefault("irtool.version", __version__)


def expose(model: ir.Model, names: Sequence[str]) -> ir.Model:
    """A copy of ``model`` (weights shared, not copied) whose graph also outputs the tensors ``names``."""
    exposed = model.clone()
    values = ir.convenience.create_value_mapping(exposed.graph, include_subgraphs=False)
    for name in names:
        value = values[name]
        if value not in exposed.graph.outputs and value not in exposed.graph.inputs:
            exposed.graph.outputs.append(value)
    return exposed


# -- writing ---------------------------------------------------------------------------------------
def weight_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def _is_external(value: ir.Value) -> bool:
    return isinstance(value.const_value, ir.ExternalTensor)


def has_external_data(model: ir.Model) -> bool:
    return any(_is_external(v) for v in model.graph.initializers.values())


def save_cut(
    cut: Cut | ir.Model,
    path: str | os.PathLike,
    check: bool = True,
    verify: Callable[[Path], None] | None = None,
) -> Path | None:
    """Write the cut to ``path`` atomically; returns the external data file written, if any.

    Weights go to ``<name>.data`` next to it when the source kept them outside (or they are
    over ``EXTERNAL_DATA_BYTES``), else inline. Both files are written into a temporary folder
    beside ``path``, checked there with ``onnx.checker`` (``full_check``, by path so a model over
    2 GB is checked too), handed to ``verify`` (``irtool extract --check`` runs it there; an
    exception leaves nothing written) and then moved into place, data first.
    """
    model = cut.model if isinstance(cut, Cut) else cut
    path = Path(path)
    folder = path.absolute().parent
    created = _make_folder(folder)
    external = has_external_data(model) or weight_bytes(model) > EXTERNAL_DATA_BYTES
    data_name = f"{path.name}.data"
    written_ok = False
    try:
        with staging(folder, path.name) as tmp:
            tmp_model = tmp / path.name
            if external:
                ir.save(model, tmp_model, external_data=data_name)
            else:
                ir.save(model, tmp_model)
            if check:
                try:
                    onnx.checker.check_model(str(tmp_model), full_check=True)
                except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
                    reason = " ".join(str(error).split())
                    raise ExtractError(f"onnx.checker rejected the cut: {reason}") from None
            if verify is not None:
                verify(tmp_model)
            moved = move_into(tmp, folder, last=path.name)
        written_ok = True
        return moved[0] if external else None
    finally:
        if not written_ok:  # a failed cut leaves no folder it made behind either
            for made in created:
                try:
                    made.rmdir()
                except OSError:
                    break


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created = []
    current = folder
    while not current.exists() and current != current.parent:
        created.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExtractError(
            f"cannot create the folder {folder}: {type(error).__name__}: {error.strerror or error}"
        ) from None
    return created


__all__ = [
    "EXTRACTED_FROM",
    "Cut",
    "CutPoint",
    "ExtractError",
    "cut_onnx",
    "expose",
    "load_source",
    "onnx_cut_points",
    "save_cut",
]
