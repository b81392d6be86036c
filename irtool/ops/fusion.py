"""Fusion passes: graph -> graph rewrites that make inference faster and exports smaller.

They run on a copy of a model's graph before the NumPy executor compiles it and before ONNX
lowering (never on the graph the trainer differentiates), and preserve its results exactly.
"""

from __future__ import annotations

from irtool.ir.graph import Graph
from irtool.ops.elementwise import ADD
from irtool.ops.linalg import MATMUL, MATMUL_ADD

FLOAT_DTYPES = ("float16", "float32", "float64")


def fuse_matmul_add(graph: Graph) -> Graph:
    """A copy of ``graph`` where ``add(matmul(x, w), b)`` is one ``matmul_add(x, w, b)``.

    Fused when x and w are 2-D of one float dtype, the product is read only by the add and
    is not a graph output, and b is a 1-D weight or constant of that dtype whose length is
    the product's static last dimension (so the add broadcasts b alone: a Dense layer's bias).
    The add's output value keeps its key and name; the matmul and its product disappear.
    """
    fused = graph.copy()
    for op in list(fused.ops):
        if op not in fused:  # an add fused into an earlier matmul
            continue
        o = fused.op(op)
        if o.prim is not MATMUL:
            continue
        x, w = o.inputs
        (product,) = o.outputs
        spec = fused.spec(product)
        if spec.dtype not in FLOAT_DTYPES or fused.spec(x).ndim != 2 or fused.spec(w).ndim != 2:
            continue
        readers = fused.consumers(product)
        if len(readers) != 1 or fused.uses(product) != 1:  # also read twice, or a graph output
            continue
        (add,) = readers
        a = fused.op(add)
        if a.prim is not ADD:
            continue
        bias = a.inputs[1] if a.inputs[0] is product else a.inputs[0]
        bspec = fused.spec(bias)
        if fused.kind(bias) not in ("weight", "const") or bspec.dtype != spec.dtype:
            continue
        if bspec.shape != (spec.shape[-1],) or bspec.shape[0] is None or fused.spec(a.outputs[0]) != spec:
            continue
        scope_path = a.name.rsplit("/", 1)[0] + "/" if "/" in a.name else ""
        fused.replace_op(add, MATMUL_ADD, {}, [x, w, bias], f"{scope_path}matmul_add")
        fused.remove_op(op)
    return fused
