"""``model_to_dot``: the layer view of a model as a Graphviz graph (Keras' ``model_to_dot``).

The picture is the model's layer view, the same one ``summary()`` shows: one box per
operation in ``model.operations`` (layers, nested models and raw ops such as ``x + y``), in
that order, and one edge per tensor from the operation whose call produced it to the operation
whose call consumed it. Only the calls that belong to this model count (``model._calls``), so a
layer shared with another model draws only this model's edges, and a layer called twice here is
still one box with several edges, as in Keras.

With ``expand_nested=True`` a nested functional or Sequential model becomes a dashed cluster
labelled with its name, holding its own layer view; edges into it end at the InputLayer of the
matching input (a Sequential model's first layer: Sequential models hide their InputLayer, as
in Keras), and edges out of it start at the layer that produced the matching output.

Node ids are scope paths (``dense``, ``encoder/conv2d``), so the DOT text is the same every run
for the same model.
"""

from __future__ import annotations

import graphviz

from irtool.layers.input_layer import InputLayer
from irtool.models.functional import Functional
from irtool.models.model import Model
from irtool.models.sequential import Sequential
from irtool.viz import styles


def model_to_dot(
    model,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    subgraph: bool = False,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    **kwargs,
) -> graphviz.Digraph:
    """The layer view of ``model`` as a ``graphviz.Digraph`` (its ``.source`` is the DOT text).

    Arguments follow Keras' ``keras.utils.model_to_dot``: ``show_shapes`` adds each box's input
    and output shapes, ``show_dtype`` its output dtype, ``show_layer_names`` puts the layer name
    before the class, ``rankdir`` is ``"TB"`` (top to bottom) or ``"LR"`` (left to right),
    ``expand_nested`` draws nested models as clusters of their layers, ``dpi`` is the PNG
    resolution, ``subgraph=True`` returns a cluster to add to another graph,
    ``show_layer_activations`` adds the activation of layers that have one,
    ``show_trainable`` marks layers with weights as trainable or not, and ``splines`` is
    Graphviz's edge style (``"ortho"``, ``"spline"``, ``"polyline"``, ``"line"``...).

    >>> import irtool as keras
    >>> inputs = keras.Input((4,), name="x")
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    >>> "x -> out" in model_to_dot(model).source
    True
    """
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    _check_model(model)
    styles.check_layout_options(rankdir, dpi)
    writer = _LayerViewWriter(
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        show_layer_activations=show_layer_activations,
        show_trainable=show_trainable,
        expand_nested=expand_nested,
    )
    if subgraph:
        dot = graphviz.Digraph(
            name=f"cluster_{model.name}", graph_attr={"label": model.name, **styles.CLUSTER_ATTRIBUTES}
        )
    else:
        dot = graphviz.Digraph(
            name=model.name,
            graph_attr=styles.graph_attributes(rankdir, dpi, splines),
            node_attr=styles.NODE_ATTRIBUTES,
            edge_attr=styles.EDGE_ATTRIBUTES,
        )
    writer.add_model(dot, model, prefix="")
    for tail, head in writer.edges:
        dot.edge(tail, head)
    return dot


def _check_model(model) -> None:
    if not isinstance(model, Model):
        raise TypeError(f"`model` must be a Model (functional, Sequential or subclassed). Received: {model!r}")
    if not getattr(model, "built", False) or _is_unbuilt_sequential(model):
        raise ValueError(
            f"This model ('{model.name}') has not yet been built. Build the model first by calling `build()` or by "
            "calling the model on a batch of data."
        )


def _is_unbuilt_sequential(model) -> bool:
    return isinstance(model, Sequential) and getattr(model, "_graph", None) is None


def node_id(prefix: str, operation) -> str:
    """The DOT id of ``operation``'s box inside the model at ``prefix`` (``encoder/``).

    Graphviz reads ``a:b`` in an edge as node ``a``, port ``b``, so ``:`` (legal in layer names)
    is percent-encoded, as is ``%`` itself to keep ids distinct.
    """
    return (prefix + operation.name).replace("%", "%25").replace(":", "%3A")


class _LayerViewWriter:
    """Adds boxes and clusters for one model (recursively for expanded nested models) and collects edges."""

    def __init__(self, expand_nested: bool, **label_options):
        self.expand_nested = expand_nested
        self.label_options = label_options
        self.edges: dict[tuple[str, str], None] = {}  # insertion-ordered set: deterministic DOT

    def expands(self, operation) -> bool:
        return (
            self.expand_nested
            and isinstance(operation, Functional)
            and not _is_unbuilt_sequential(operation)
            and bool(visible_operations(operation))
        )

    def add_model(self, dot: graphviz.Digraph, model, prefix: str) -> None:
        if not isinstance(model, Functional):  # a subclassed model is one box, as in Keras
            dot.node(node_id(prefix, model), label=self.label(model, owner=None))
            return
        operations = visible_operations(model)
        for operation in operations:
            if self.expands(operation):
                inner_prefix = f"{prefix}{operation.name}/"
                label = f"{operation.name} ({operation.class_name})"
                attributes = {"label": label, **styles.CLUSTER_ATTRIBUTES}
                with dot.subgraph(name=f"cluster_{node_id(prefix, operation)}", graph_attr=attributes) as cluster:
                    self.add_model(cluster, operation, inner_prefix)
            else:
                dot.node(node_id(prefix, operation), label=self.label(operation, owner=model))
        for operation in operations:
            for call in calls_in(operation, model):
                for input_index, tensor in enumerate(call.input_tensors):
                    producer = producer_of(tensor, model)
                    if producer is None or not _is_visible(producer[0].operation, model):
                        continue
                    tail = self.source_id(prefix, producer[0].operation, producer[1])
                    head = self.destination_id(prefix, operation, input_index)
                    self.edges.setdefault((tail, head), None)

    def source_id(self, prefix: str, operation, output_index: int) -> str:
        """The box an edge from ``operation``'s output ``output_index`` starts at (inside expanded models)."""
        while self.expands(operation):
            prefix = f"{prefix}{operation.name}/"
            outputs = operation.outputs
            producer = producer_of(outputs[min(output_index, len(outputs) - 1)], operation)
            operation, output_index = producer[0].operation, producer[1]
        return node_id(prefix, operation)

    def destination_id(self, prefix: str, operation, input_index: int) -> str:
        """The box an edge into ``operation``'s input ``input_index`` ends at (inside expanded models)."""
        while self.expands(operation):
            prefix = f"{prefix}{operation.name}/"
            if isinstance(operation, Sequential):
                operation = operation.layers[0]
            else:
                inputs = operation.inputs
                operation = operation._input_calls[id(inputs[min(input_index, len(inputs) - 1)])].operation
        return node_id(prefix, operation)

    def label(self, operation, owner) -> str:
        return layer_label(operation, calls_in(operation, owner), **self.label_options)


def visible_operations(model) -> list:
    """The operations drawn as boxes: ``model.operations``, less a Sequential model's hidden InputLayer."""
    return [op for op in model._operations if _is_visible(op, model)]


def _is_visible(operation, model) -> bool:
    return not (isinstance(model, Sequential) and isinstance(operation, InputLayer))


def calls_in(operation, model) -> list:
    """``operation``'s calls that belong to ``model`` (all of them when ``model`` is None: a subclassed model's box)."""
    calls = list(getattr(operation, "_inbound_nodes", []))
    owned = getattr(model, "_calls", None)
    return calls if owned is None else [call for call in calls if call in owned]


def producer_of(tensor, model):
    """``(call, output index)`` that produced ``tensor`` as seen from ``model`` (its inputs come from its InputLayers)."""
    input_calls = getattr(model, "_input_calls", {})
    if id(tensor) in input_calls:
        return input_calls[id(tensor)], 0
    return tensor._keras_history


# -- labels ----------------------------------------------------------------------------------------
def layer_label(
    operation,
    calls: list,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
) -> str:
    """The HTML-like label of ``operation``'s box, from its ``calls`` in the model being drawn."""
    class_name = operation.class_name
    if show_layer_names:
        header = f"<b>{styles.escape(operation.name)}</b> ({styles.escape(class_name)})"
    else:
        header = f"<b>{styles.escape(class_name)}</b>"
    rows = []
    activation = getattr(operation, "activation", None) if show_layer_activations else None
    if activation is not None:
        rows.append(f"Activation: <b>{styles.escape(activation_name(activation))}</b>")
    cells = []
    if show_shapes:
        if class_name != "InputLayer":
            cells.append(styles.detail_cell("Input shape", _per_call(calls, "input_tensors", _shape)))
        cells.append(styles.detail_cell("Output shape", _per_call(calls, "output_tensors", _shape)))
    if show_dtype:
        cells.append(styles.detail_cell("Output dtype", _per_call(calls, "output_tensors", _dtype)))
    if show_trainable and getattr(operation, "weights", None):
        if operation.trainable:
            cells.append(styles.detail_cell("", ["Trainable"], bgcolor="forestgreen", color="white"))
        else:
            cells.append(styles.detail_cell("", ["Non-trainable"], bgcolor="firebrick", color="white"))
    return styles.box_label(header, styles.family_of_operation(operation), rows, cells)


def activation_name(activation) -> str:
    """``relu`` for the function ``activations.relu`` (Keras' rule: ``.name``, else ``__name__``, else ``str``)."""
    if hasattr(activation, "name"):
        return str(activation.name)
    if hasattr(activation, "__name__"):
        return activation.__name__
    return str(activation)


def _shape(tensor) -> str:
    return styles.format_shape(getattr(tensor, "shape", None))


def _dtype(tensor) -> str:
    return str(getattr(tensor, "dtype", "?"))


def _per_call(calls: list, attribute: str, describe) -> list[str]:
    """Lines for a detail cell: one per tensor when every call agrees, else ``call i: a, b`` per call."""
    entries = [(call.index, tuple(describe(t) for t in getattr(call, attribute))) for call in calls]
    distinct = {entry for _, entry in entries}
    if not distinct:
        return ["?"]
    if len(distinct) == 1:
        return list(entries[0][1]) or ["-"]
    return [f"call {index}: {', '.join(entry) or '-'}" for index, entry in entries]
