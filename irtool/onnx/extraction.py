"""``extract``: cut a model at named tensors into a smaller ONNX model (a feature extractor, a tail).

    features = extract("resnet.onnx", outputs=["pool5"])        # any ONNX file: tensor or node names
    features = extract(model, outputs=["block3_pool"])           # an irtool model: layer names

An ONNX source is cut on onnx-ir (``irtool.onnx.onnx_cut``). An irtool model is cut in its own
graph and then lowered, rather than exported whole and cut in ONNX: the export renames values,
fuses Dense layers into Gemm, drops identities and moves channels-last tensors to channels-first,
so a layer's output is not reliably one tensor of the exported file, while in the IR it is one
value (``graph.subgraph`` between the chosen values). Lowering the cut then gives it Keras-layout
inputs and outputs named after the layers, and the same peepholes as a whole-model export.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import onnx
import onnx_ir as ir

from irtool.onnx.export import lower
from irtool.onnx.onnx_cut import (
    Cut,
    CutPoint,
    ExtractError,
    cut_onnx,
    load_source,
    mark_extracted,
    onnx_cut_points,
)
from irtool.version import __version__


def _is_irtool_model(obj) -> bool:
    """irtool models as this layer sees them (it sits below ``irtool.models``): a graph and operations."""
    return hasattr(obj, "graph") and hasattr(obj, "operations") and hasattr(obj, "inputs")


def extract(model_or_path, outputs: Sequence[str], inputs: Sequence[str] | None = None) -> onnx.ModelProto:
    """The part of a model that computes ``outputs`` from ``inputs`` (default: the model's inputs
    that the outputs need), as an ``onnx.ModelProto``.

    ``model_or_path`` is an ``.onnx`` path, an ``onnx.ModelProto``, an ``onnx_ir.Model`` (names
    are tensor or node names) or a built irtool model (names are layer names; a layer called more
    than once is ``name_call1``..., a layer with several outputs ``name:0``...). For a file with
    external data, the returned proto's initializers still point at that file's data (relative to
    its folder): ``save_cut(extract_cut(...), path)`` writes a self-contained cut.

    >>> cut = extract("model.onnx", outputs=["features"])  # doctest: +SKIP
    """
    return extract_cut(model_or_path, outputs, inputs).to_proto()


def extract_cut(
    model_or_path, outputs: Sequence[str], inputs: Sequence[str] | None = None, source: str | None = None
) -> Cut:
    """``extract``, returning the ``Cut``: the onnx-ir model, and the source with the cut points
    exposed (what ``irtool extract --check`` compares it with). ``source`` names the model in
    messages and in the cut's ``irtool.extracted_from``."""
    if _is_irtool_model(model_or_path):
        return extract_layers(model_or_path, outputs, inputs, source)
    model, name = load_source(model_or_path)
    return cut_onnx(model, source or name, outputs, inputs)


def cut_points(model_or_path) -> list[CutPoint]:
    """The names one may cut at, with dtypes and shapes: layer outputs for an irtool model,
    graph inputs and node outputs for ONNX."""
    if _is_irtool_model(model_or_path):
        return [point for point, _ in _layer_points(model_or_path).values()]
    return onnx_cut_points(model_or_path)


# -- irtool models ---------------------------------------------------------------------------------
def _layer_points(model) -> dict:
    """``{name: (CutPoint, [tensors])}`` for the model's inputs and every layer call in the model.

    A layer called once in the model is its name; one called several times follows the scope
    names of the graph (``dense``, ``dense_call1``); a layer with several outputs also offers
    each as ``name:i``.
    """
    graph = model.graph
    points: dict = {}

    def add(name, cls, tensors, kind):
        first = tensors[0]
        shape = None if len(tensors) > 1 else tuple(first.shape)
        dtype = None if len(tensors) > 1 else str(first.dtype)
        points[name] = (CutPoint(name, kind, cls, dtype, shape), list(tensors))
        if len(tensors) > 1:
            for i, t in enumerate(tensors):
                points[f"{name}:{i}"] = (CutPoint(f"{name}:{i}", kind, cls, str(t.dtype), tuple(t.shape)), [t])

    for t in model.inputs:
        add(graph.name(t), "InputLayer", [t], "input")
    for operation in model.operations:
        calls = [
            call
            for call in operation._inbound_nodes
            if call.input_tensors and call.output_tensors and all(t in graph for t in call.output_tensors)
        ]
        for call in calls:
            name = operation.name if len(calls) == 1 or call.index == 0 else f"{operation.name}_call{call.index}"
            add(name, type(operation).__name__, call.output_tensors, "layer")
    return points


def _pick(points: dict, names: Sequence[str], role: str, source: str) -> tuple[list, list]:
    tensors, labels = [], []
    for name in names:
        if name not in points:
            close = difflib.get_close_matches(name, list(points), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ExtractError(
                f"{role} '{name}': {source} has no layer or input of that name{hint}; "
                f"`irtool extract {source} --list` prints the names one may cut at"
            )
        found = points[name][1]
        for i, t in enumerate(found):
            if t not in tensors:
                tensors.append(t)
                labels.append(name if len(found) == 1 else f"{name}:{i}")
    return tensors, labels


def extract_layers(
    model, outputs: Sequence[str], inputs: Sequence[str] | None = None, source: str | None = None
) -> Cut:
    """Cut an irtool model at layer names in its graph, then lower the cut (see the module docstring)."""
    source = source or f"model '{model.name}'"
    if not outputs:
        raise ExtractError("no outputs to cut at: pass one or more layer names")
    graph = model.graph
    points = _layer_points(model)
    out_tensors, out_names = _pick(points, outputs, "output", source)
    needed = graph.ancestors(out_tensors) | set(out_tensors)
    if inputs is None:
        in_tensors = [t for t in model.inputs if t in needed]
        in_names = [graph.name(t) for t in in_tensors]
    else:
        in_tensors, in_names = _pick(points, inputs, "input", source)
        unread = [name for t, name in zip(in_tensors, in_names) if t not in needed]
        if unread:
            raise ExtractError(
                f"input {', '.join(repr(n) for n in unread)}: the outputs {', '.join(outputs)} do not depend on it; "
                "leave it out"
            )
    try:
        sub = graph.subgraph(in_tensors, out_tensors)
    except ValueError as error:
        raise ExtractError(
            f"the outputs {', '.join(outputs)} of {source} also depend on something --inputs does not list ({error}); "
            "add that layer's input to --inputs"
        ) from None
    doc = f"{', '.join(out_names)} of {model.class_name} model '{model.name}', cut by irtool {__version__}"
    proto = lower(sub, name=model.name, output_names=out_names, input_names=in_names, doc_string=doc)
    cut = ir.serde.deserialize_model(proto)
    mark_extracted(cut, source, in_names, out_names)

    def exposed() -> ir.Model:
        extra = [(t, n) for t, n in zip(in_tensors, in_names) if t not in model.inputs]
        values = [t for t, _ in extra] + out_tensors
        full = graph.subgraph(list(model.inputs), values)
        names = [n for _, n in extra] + out_names
        return ir.serde.deserialize_model(lower(full, name=model.name, output_names=names))

    return Cut(cut, exposed, source)


__all__ = ["Cut", "CutPoint", "ExtractError", "cut_points", "extract", "extract_cut", "extract_layers"]
