"""How a box looks: layer families and their colours, fonts, and the HTML-like labels of boxes.

Graphviz draws an HTML-like label (``label=<<table>...</table>>``) as a small table, which is
how both Keras' plots and ours lay out a box: a coloured header row with the name and class,
then optional rows (activation) and a row of detail cells (shapes, dtype, trainable). Both the
layer view (``layer_view.py``) and the ONNX view (``onnx_view.py``) build their labels here, so
the two kinds of picture read alike.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from irtool.models.model import Model
from irtool.ops.operation import RawOperation

#: The font of every label; graphviz-pure maps it to its bundled Arimo, system Graphviz to fontconfig's match.
FONT = "Helvetica"
HEADER_POINT_SIZE = 14
DETAIL_POINT_SIZE = 12
#: Outline of boxes and cells, and the colour of edges.
LINE_COLOR = "#4D4D4D"
EDGE_COLOR = "#555555"

#: Header colour per family (ColorBrewer's Set3, light enough for black text).
FAMILY_COLORS = {
    "input": "#80B1D3",
    "output": "#80B1D3",
    "core": "#FDB462",
    "conv": "#B3DE69",
    "pooling": "#8DD3C7",
    "normalization": "#FFED6F",
    "recurrent": "#BC80BD",
    "attention": "#FB8072",
    "merge": "#BEBADA",
    "reshape": "#D9D9D9",
    "activation": "#FCCDE5",
    "preprocessing": "#CCEBC5",
    "model": "#FFFFB3",
    "op": "#EEEEEE",
    "custom": "#FFFFFF",
}

# The module a built-in layer class is defined in says its family; walking the MRO lets a
# user's subclass of Dense or Conv2D take its parent's colour.
_FAMILY_BY_MODULE = {
    "input_layer": "input",
    "dense": "core",
    "einsum_dense": "core",
    "embedding": "core",
    "lambda_layer": "core",
    "convolutional": "conv",
    "convolutional_base": "conv",
    "convolutional_depthwise": "conv",
    "convolutional_transpose": "conv",
    "pooling": "pooling",
    "normalization": "normalization",
    "rnn": "recurrent",
    "rnn_cells": "recurrent",
    "bidirectional": "recurrent",
    "attention": "attention",
    "multi_head_attention": "attention",
    "merging": "merge",
    "dot": "merge",
    "reshaping": "reshape",
    "activation": "activation",
    "activations": "activation",
    "dropout": "activation",
    "regularization": "activation",
    "preprocessing": "preprocessing",
}

# Class-name patterns for classes defined elsewhere (layers added later, users' own layers
# named after what they do) and for ONNX operator types. First match wins.
_FAMILY_BY_NAME = [
    (re.compile(r"^(InputLayer|Input)$"), "input"),
    (re.compile(r"Conv"), "conv"),
    (re.compile(r"Pool|^Reduce|^Arg(Max|Min)$"), "pooling"),
    (re.compile(r"Norm"), "normalization"),
    (re.compile(r"RNN|LSTM|GRU|Bidirectional|Scan|Loop"), "recurrent"),
    (re.compile(r"Attention"), "attention"),
    (
        re.compile(
            r"^(Add|Sub|Subtract|Mul|Multiply|Div|Average|Maximum|Minimum|Max|Min|Mean|Sum|Concat|Concatenate|Dot)$"
        ),
        "merge",
    ),
    (
        re.compile(
            r"Reshape|Flatten|Transpose|Permute|Squeeze|Unsqueeze|Expand|Slice|Gather|Split|Pad|Crop|Resize|"
            r"UpSampling|ZeroPadding|Cropping|RepeatVector|Tile|Shape|Identity|Cast"
        ),
        "reshape",
    ),
    (
        re.compile(
            r"Relu|ReLU|Elu|ELU|Selu|Gelu|Sigmoid|Tanh|Softmax|Softplus|Softsign|Activation|Dropout|Noise|"
            r"HardSigmoid|HardSwish|Mish|Erf|Clip|PRelu|LeakyRelu|ThresholdedRelu"
        ),
        "activation",
    ),
    (re.compile(r"^(Dense|EinsumDense|Embedding|MatMul|Gemm|Einsum|Lambda)$"), "core"),
    (re.compile(r"Rescaling|Normalization|Resizing|CenterCrop|CategoryEncoding|Discretization"), "preprocessing"),
]


def family_of_class_name(class_name: str, default: str = "custom") -> str:
    """The family whose name pattern matches ``class_name`` (a layer class or an ONNX op type)."""
    for pattern, family in _FAMILY_BY_NAME:
        if pattern.search(class_name):
            return family
    return default


def family_of_operation(operation) -> str:
    """The colour family of a layer, model or raw op (``RawOperation``) box."""
    if isinstance(operation, Model):
        return "model"
    if isinstance(operation, RawOperation):
        return "op"
    for cls in type(operation).__mro__:
        module = cls.__module__ or ""
        if module.startswith("irtool.layers."):
            family = _FAMILY_BY_MODULE.get(module.rsplit(".", 1)[1])
            if family is not None:
                return family
    for cls in type(operation).__mro__:
        family = family_of_class_name(cls.__name__, default="")
        if family:
            return family
    return "custom"


def escape(text) -> str:
    """``text`` made safe inside an HTML-like label."""
    return html.escape(str(text), quote=True)


def _font(text: str, size: int, color: str | None = None) -> str:
    colour = f' color="{color}"' if color else ""
    return f'<font point-size="{size}"{colour}>{text}</font>'


def detail_cell(title: str, lines: Sequence[str], bgcolor: str = "white", color: str | None = None) -> str:
    """A detail cell: a title line (``Input shape``) then one bold line per value; ``lines`` are escaped here."""
    body = "<br/>".join(f"<b>{escape(line)}</b>" for line in lines)
    text = f"{escape(title)}<br/>{body}" if title else body
    return f'<td bgcolor="{bgcolor}">{_font(text, DETAIL_POINT_SIZE, color)}</td>'


def box_label(
    header: str,
    family: str,
    rows: Sequence[str] = (),
    cells: Sequence[str] = (),
) -> str:
    """The HTML-like label of one box.

    ``header`` is already-escaped HTML (``<b>dense</b> (Dense)``); each of ``rows`` is an
    escaped line shown across the box (the activation); ``cells`` are ``detail_cell`` outputs,
    shown side by side under them.
    """
    span = max(1, len(cells))
    color = FAMILY_COLORS.get(family, FAMILY_COLORS["custom"])
    parts = [
        f'<table border="0" cellborder="1" cellspacing="0" cellpadding="6" color="{LINE_COLOR}" bgcolor="white">',
        f'<tr><td colspan="{span}" bgcolor="{color}">{_font(header, HEADER_POINT_SIZE)}</td></tr>',
    ]
    parts += [f'<tr><td colspan="{span}">{_font(row, DETAIL_POINT_SIZE)}</td></tr>' for row in rows]
    if cells:
        parts.append(f"<tr>{''.join(cells)}</tr>")
    parts.append("</table>")
    return "<" + "".join(parts) + ">"


def format_shape(shape) -> str:
    """A shape as Keras prints it: ``(None, 784)``, ``(None,)``, ``()``; ``?`` when unknown."""
    if shape is None:
        return "?"
    return str(tuple(shape))


RANKDIRS = ("TB", "LR", "BT", "RL")


def check_layout_options(rankdir, dpi) -> None:
    """Keras-style errors for a ``rankdir`` Graphviz does not know or a ``dpi`` that is not a positive number."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"`rankdir` must be one of {', '.join(RANKDIRS)}. Received: rankdir={rankdir!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not dpi > 0:
        raise ValueError(f"`dpi` must be a positive number. Received: dpi={dpi!r}")


def graph_attributes(rankdir: str, dpi, splines: str) -> dict:
    """Attributes of the root graph shared by every plot (layer view and ONNX view)."""
    return {
        "rankdir": rankdir,
        "dpi": str(dpi),
        "splines": splines,
        "concentrate": "true",
        "nodesep": "0.3",
        "ranksep": "0.45",
        "fontname": FONT,
        "bgcolor": "white",
    }


#: ``splines="auto"`` draws orthogonal edges up to this many boxes and curved ones beyond. Graphviz's
#: orthogonal router grows much faster than the graph: a 1,532-box ONNX picture laid out in 18.8 s
#: (graphviz-pure) and 9.6 s (dot) with ``ortho``, 1.1 s and 1.2 s with ``spline``.
ORTHO_MAX_BOXES = 300


def resolve_splines(splines: str, boxes: int) -> str:
    """``splines`` as given, or for ``"auto"``: ``"ortho"`` up to ``ORTHO_MAX_BOXES`` boxes, else ``"spline"``."""
    if splines != "auto":
        return splines
    return "ortho" if boxes <= ORTHO_MAX_BOXES else "spline"


NODE_ATTRIBUTES = {"shape": "plain", "fontname": FONT}
EDGE_ATTRIBUTES = {"color": EDGE_COLOR, "penwidth": "1.5", "arrowsize": "0.8"}
CLUSTER_ATTRIBUTES = {
    "style": "dashed,rounded",
    "color": LINE_COLOR,
    "fontname": FONT,
    "fontsize": str(HEADER_POINT_SIZE),
    "labeljust": "l",
    "margin": "12",
}
