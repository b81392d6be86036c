"""Fusion passes: graph -> graph rewrites that make inference faster and exports smaller.

They run on a copy of a model's graph before the NumPy executor compiles it and before ONNX
lowering, and preserve its results exactly; the trainer differentiates ``fuse_relu``'s graph,
whose fused ops carry the ReLU's gradient in their ``vjp``.
"""

from __future__ import annotations

from irtool.ir.gc_pause import gc_paused
from irtool.ir.graph import Graph
from irtool.ops.conv import CONV
from irtool.ops.elementwise import ADD, RELU
from irtool.ops.linalg import MATMUL, MATMUL_ADD

FLOAT_DTYPES = ("float16", "float32", "float64")


def fuse_matmul_add(graph: Graph, in_place: bool = False) -> Graph:
    """``graph`` with each ``add(matmul(x, w), b)`` as one ``matmul_add(x, w, b)``: a copy, or
    ``graph`` itself when nothing fuses or ``in_place`` (for a graph a pass just made).

    Fused when x and w are 2-D of one float dtype, the product is read only by the add and
    is not a graph output, and b is a 1-D weight or constant of that dtype whose length is
    the product's static last dimension (so the add broadcasts b alone: a Dense layer's bias).
    The add's output value keeps its key and name; the matmul and its product disappear.
    """
    pairs = list(_matmul_add_pairs(graph))
    if not pairs:
        return graph
    with gc_paused():
        fused = graph if in_place else graph.copy()
        for matmul, add, inputs in pairs:
            name = fused.name(add)
            scope_path = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
            fused.replace_op(add, MATMUL_ADD, {}, inputs, f"{scope_path}matmul_add")
            fused.remove_op(matmul)
    return fused


def _matmul_add_pairs(graph: Graph):
    """``(matmul, add, [x, w, b])`` for every pair ``fuse_matmul_add`` fuses."""
    for op in graph.ops:
        if graph.prim(op) is not MATMUL:
            continue
        o = graph.op(op)
        x, w = o.inputs
        (product,) = o.outputs
        spec = graph.spec(product)
        if spec.dtype not in FLOAT_DTYPES or graph.spec(x).ndim != 2 or graph.spec(w).ndim != 2:
            continue
        readers = graph.consumers(product)
        if len(readers) != 1 or graph.uses(product) != 1:  # also read twice, or a graph output
            continue
        (add,) = readers
        a = graph.op(add)
        if a.prim is not ADD:
            continue
        bias = a.inputs[1] if a.inputs[0] is product else a.inputs[0]
        bspec = graph.spec(bias)
        if graph.kind(bias) not in ("weight", "const") or bspec.dtype != spec.dtype:
            continue
        if bspec.shape != (spec.shape[-1],) or bspec.shape[0] is None or graph.spec(a.outputs[0]) != spec:
            continue
        yield op, add, [x, w, bias]


def fuse_relu(graph: Graph) -> Graph:
    """``graph`` with each ``relu(matmul_add(x, w, b))`` as one ``matmul_add(x, w, b,
    activation="relu")`` and each ``relu(conv(...))`` as one ``conv(..., activation="relu")``,
    which apply the ReLU in place on the array they just made: a copy, or ``graph`` itself when
    nothing fuses. For the NumPy executor and the trainer (whose ``conv`` then runs ONNX
    Runtime's convolution with its ReLU applied as it writes, and whose backward pass keeps one
    array fewer per layer); the export keeps ONNX's ``Gemm``/``Conv`` + ``Relu`` pairs and runs
    on ``fuse_matmul_add``'s graph.

    Fused when the op's output is read only by the relu and is not a graph output, so no reader
    sees the array change. The relu's output value keeps its key and name.
    """
    pairs = list(_relu_pairs(graph))
    if not pairs:
        return graph
    with gc_paused():
        fused = graph.copy()
        for producer, relu in pairs:
            o = fused.op(producer)
            fused.replace_op(relu, o.prim, {**o.attrs, "activation": "relu"}, fused.op_inputs(producer))
            fused.remove_op(producer)
    return fused


def _relu_pairs(graph: Graph):
    for op in graph.ops:
        if graph.prim(op) not in (MATMUL_ADD, CONV) or graph.op(op).attrs.get("activation"):
            continue
        (made,) = graph.op_outputs(op)
        readers = graph.consumers(made)
        if len(readers) == 1 and graph.uses(made) == 1 and graph.prim(readers[0]) is RELU:
            yield op, readers[0]
