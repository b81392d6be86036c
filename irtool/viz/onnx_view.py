"""Pictures of ONNX files, node by node (any ONNX file, not only irtool's exports).

One box per ONNX node, one per graph input and one per graph output; edges follow tensors.
Shapes come from ONNX shape inference (``onnx.shape_inference.infer_shapes``), so every box
shows its outputs' shapes even when the file carries no ``value_info``. Initializers,
``Constant`` nodes and nodes computed from constants alone (a ``Cast`` or ``Transpose`` of a
weight, a ``ConstantOfShape`` of a constant shape; chains of them) are not boxes: each is folded
into the boxes of the nodes that read it, as a row naming the input slot it fills
(``W: (32, 3, 3, 3)`` in a ``Conv``, from the operator's schema; ``(Cast)`` when a folded node
computed it), as Netron does, which keeps a network's picture about its computation rather than
its weights and keeps large graphs quick to lay out.

The file is read without its external data (only shapes are needed), and nothing in it is run.
Subgraphs of control-flow nodes (``If``, ``Loop``, ``Scan``) are not drawn; their boxes name them.
"""

from __future__ import annotations

import os
import warnings

import graphviz
import onnx

from irtool.viz import styles
from irtool.viz.plot import ModelPlot, save_plot

#: Node names longer than this are shortened in the middle (long exporter paths make boxes too wide).
MAX_NAME_LENGTH = 48


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """The ONNX model at ``path``, without external data (a picture needs shapes, not weights)."""
    try:
        return onnx.load(os.fspath(path), load_external_data=False)
    except OSError:
        raise
    except Exception as error:
        reason = " ".join(str(error).split())
        raise ValueError(
            f"{os.fspath(path)} is not a readable ONNX model ({type(error).__name__}: {reason})"
        ) from error


def onnx_to_dot(
    model: onnx.ModelProto | str | os.PathLike,
    show_dtype: bool = False,
    rankdir: str = "TB",
    dpi: int = 200,
    splines: str = "auto",
) -> graphviz.Digraph:
    """The node-level picture of an ONNX model (a ``ModelProto`` or a path) as a ``graphviz.Digraph``.

    Every box shows its output shapes; ``show_dtype`` adds element types. ``rankdir``, ``dpi``
    and ``splines`` are as in ``model_to_dot``, except that the default ``splines="auto"`` routes
    edges orthogonally only up to ``styles.ORTHO_MAX_BOXES`` boxes (a big graph's orthogonal
    routing takes Graphviz tens of seconds) and as curves beyond.
    """
    if not isinstance(model, onnx.ModelProto):
        model = load_onnx(model)
    styles.check_layout_options(rankdir, dpi)
    graph = _inferred(model).graph
    types = _value_types(graph)
    constants = {init.name: _tensor_type(init) for init in graph.initializer}
    folded_by: dict[str, str] = {}  # a folded node's output -> its op type
    folded_nodes = set()
    outputs = {value.name for value in graph.output}
    for index, node in enumerate(graph.node):
        if _computes_a_constant(node, constants, outputs):
            folded_nodes.add(index)
            for name in node.output:
                if name:
                    constants[name] = types.get(name) or (
                        _constant_type(node) if node.op_type == "Constant" else ("?", "?")
                    )
                    if node.op_type != "Constant":
                        folded_by[name] = node.op_type
    dot = graphviz.Digraph(
        name=graph.name or "onnx_model",
        graph_attr=styles.graph_attributes(rankdir, dpi, splines),
        node_attr=styles.NODE_ATTRIBUTES,
        edge_attr=styles.EDGE_ATTRIBUTES,
    )
    producers: dict[str, str] = {}
    drawn_inputs = 0
    for index, value in enumerate(value for value in graph.input if value.name not in constants):
        drawn_inputs += 1
        box = f"input{index}"
        producers[value.name] = box
        dot.node(box, label=_io_label(value.name, "Input", "input", types.get(value.name), show_dtype))
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    edges: dict[tuple[str, str], None] = {}
    for index, node in enumerate(graph.node):
        if index in folded_nodes:
            continue
        box = f"node{index}"
        dot.node(box, label=_node_label(node, opsets, constants, folded_by, types, show_dtype))
        for name in node.input:
            if name in producers:
                edges.setdefault((producers[name], box), None)
        for name in node.output:
            if name:
                producers[name] = box
    for index, value in enumerate(graph.output):
        box = f"output{index}"
        dot.node(box, label=_io_label(value.name, "Output", "output", types.get(value.name), show_dtype))
        if value.name in producers:
            edges.setdefault((producers[value.name], box), None)
    for tail, head in edges:
        dot.edge(tail, head)
    boxes = drawn_inputs + len(graph.node) - len(folded_nodes) + len(graph.output)
    dot.graph_attr["splines"] = styles.resolve_splines(splines, boxes)
    return dot


#: Operators whose output is not a function of their inputs: never folded, even from constants.
_RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def _computes_a_constant(node: onnx.NodeProto, constants: dict, outputs: set) -> bool:
    """Whether ``node`` only computes a weight-like value from constants (a ``Constant``, or a
    ``Cast``/``Transpose``/``Reshape``/``ConstantOfShape``... all of whose inputs are initializers or
    folded outputs), as Netron folds them: its result is shown in its consumers' boxes, not as a box."""
    if node.domain not in ("", "ai.onnx") or set(node.output) & outputs or node.op_type in _RANDOM_OPS:
        return False
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return False
    if node.op_type == "Constant":
        return True
    inputs = [name for name in node.input if name]
    return bool(inputs) and all(name in constants for name in inputs)


def plot_onnx(
    model: onnx.ModelProto | str | os.PathLike,
    to_file: str | os.PathLike | None = "model.png",
    show_dtype: bool = False,
    rankdir: str = "TB",
    dpi: int = 200,
    splines: str = "auto",
    renderer: str | None = None,
) -> ModelPlot:
    """Draw an ONNX model (``onnx_to_dot``) to ``to_file``, as ``plot_model`` does for irtool models."""
    dot = onnx_to_dot(model, show_dtype=show_dtype, rankdir=rankdir, dpi=dpi, splines=splines)
    if to_file is None:
        return ModelPlot(dot, preferred_renderer=renderer)
    return save_plot(dot, to_file, renderer)


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with shapes inferred; a model shape inference rejects is drawn with the shapes it has."""
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as error:
        warnings.warn(
            f"ONNX shape inference failed ({type(error).__name__}: {error}); drawing the shapes the file declares",
            stacklevel=3,
        )
        return model


# -- types and shapes ------------------------------------------------------------------------------
def _dtype_name(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type else "?"


def _shape_of(type_proto: onnx.TypeProto) -> tuple[str, str]:
    """``(shape, dtype)`` text of a value's type: ``("(batch, 10)", "float32")``; ``?`` where unknown."""
    kind = type_proto.WhichOneof("value")
    if kind != "tensor_type":
        return (kind.replace("_type", "") if kind else "?"), "?"
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return "?", _dtype_name(tensor.elem_type)
    dims = []
    for dim in tensor.shape.dim:
        which = dim.WhichOneof("value")
        dims.append(str(dim.dim_value) if which == "dim_value" else dim.dim_param if which == "dim_param" else "?")
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})", _dtype_name(tensor.elem_type)


def _value_types(graph: onnx.GraphProto) -> dict[str, tuple[str, str]]:
    types = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.WhichOneof("value") is not None:
            types[value.name] = _shape_of(value.type)
    return types


def _tensor_type(tensor: onnx.TensorProto) -> tuple[str, str]:
    dims = [str(d) for d in tensor.dims]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})", _dtype_name(tensor.data_type)


def _constant_type(node: onnx.NodeProto) -> tuple[str, str]:
    for attribute in node.attribute:
        if attribute.name in ("value", "sparse_value") and attribute.HasField("t"):
            return _tensor_type(attribute.t)
        if attribute.name in ("value_float", "value_int"):
            return "()", "float32" if attribute.name == "value_float" else "int64"
        if attribute.name in ("value_floats", "value_ints"):
            count = len(attribute.floats) + len(attribute.ints)
            return f"({count},)", "float32" if attribute.name == "value_floats" else "int64"
    return "?", "?"


# -- labels ----------------------------------------------------------------------------------------
def _shorten(name: str) -> str:
    if len(name) <= MAX_NAME_LENGTH:
        return name
    keep = (MAX_NAME_LENGTH - 1) // 2
    return f"{name[:keep]}…{name[-keep:]}"


def _slot_names(node: onnx.NodeProto, opsets: dict) -> list[str]:
    """The schema's names of ``node``'s input slots (``X``, ``W``, ``B``); empty if the operator is unknown."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except Exception:
        return []
    names = []
    for index in range(len(node.input)):
        parameters = schema.inputs
        if not parameters:
            return []
        parameter = parameters[min(index, len(parameters) - 1)]
        if index >= len(parameters) and parameter.option != onnx.defs.OpSchema.FormalParameterOption.Variadic:
            return []
        names.append(parameter.name)
    return names


def _node_label(
    node: onnx.NodeProto, opsets: dict, constants: dict, folded_by: dict, types: dict, show_dtype: bool
) -> str:
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    header = f"<b>{styles.escape(op)}</b>"
    rows = [styles.escape(_shorten(node.name))] if node.name else []
    slots = _slot_names(node, opsets)
    for index, name in enumerate(node.input):
        if name in constants:
            shape, dtype = constants[name]
            slot = slots[index] if index < len(slots) else _shorten(name)
            via = f" ({styles.escape(folded_by[name])})" if name in folded_by else ""
            rows.append(f"{styles.escape(slot)}: <b>{styles.escape(shape)}</b>{' ' + dtype if show_dtype else ''}{via}")
    subgraphs = [a.name for a in node.attribute if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)]
    if subgraphs:
        rows.append(f"subgraphs (not drawn): {styles.escape(', '.join(subgraphs))}")
    described = [types.get(name, ("?", "?")) for name in node.output if name]
    cells = [styles.detail_cell("Output shape", [shape for shape, _ in described] or ["-"])]
    if show_dtype:
        cells.append(styles.detail_cell("Output dtype", [dtype for _, dtype in described] or ["-"]))
    return styles.box_label(header, styles.family_of_class_name(node.op_type, default="op"), rows, cells)


def _io_label(name: str, kind: str, family: str, described, show_dtype: bool) -> str:
    shape, dtype = described or ("?", "?")
    cells = [styles.detail_cell("Shape", [shape])]
    if show_dtype:
        cells.append(styles.detail_cell("Dtype", [dtype]))
    header = f"<b>{styles.escape(_shorten(name))}</b> ({kind})"
    return styles.box_label(header, family, (), cells)
