#!/usr/bin/env python3
"""Should irtool's ONNX export build its model with onnx-ir? A measurement, not a test.

    python tools/bench_onnx_ir.py            # 1k-layer Dense chain, wide MLP, toy ResNet
    python tools/bench_onnx_ir.py --rounds 5 # fewer rounds

Needs ``pip install onnx-ir`` (not an irtool dependency) and onnxruntime.

For each model it times, interleaved (rotating order, medians over the rounds):

  a   ``irtool.onnx.to_onnx(model)``: today's path (NodeProtos from ``onnx.helper``,
      initializers from ``numpy_helper.from_array``, irtool's peepholes, validation);
  b   the same lowering (every primitive's own ``to_onnx`` rule, through a ``LoweringContext``
      subclass) emitting ``onnx_ir`` nodes and values instead, initializers as ``ir.Tensor``
      views of the weight arrays (no copy until serialization), onnx-ir's
      ``IdentityEliminationPass`` and ``RemoveUnusedNodesPass`` instead of irtool's identity
      dropping and dead-node/unused-initializer removal, the two peepholes onnx-ir has no pass
      for (Transpose merging, MatMul+Add -> Gemm) rewritten on the IR, then
      ``ir.serde.serialize_model`` and the same ``irtool.onnx.export.validate``;
  a0/b0  both without validation (``check=False``): the lowering and assembly alone;
  c   the conversion alone: ``serialize_model(deserialize_model(proto))`` of a's result
      (what adopting onnx-ir only at the edges, e.g. for importing foreign files, costs).

Both exports are checked to hold the same nodes and to give the same ONNX Runtime outputs.
Last, a model that returns one tensor twice shows the output names each variant writes.
irtool itself is not changed: variant b lives in this file.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, os.pardir))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx_ir as ir  # noqa: E402
import onnx_ir.passes.common as ir_passes  # noqa: E402
from bench_foundation import calibrate, fmt_s, interleaved, irtool_chain, irtool_mlp  # noqa: E402
from bench_layers import toy_resnet  # noqa: E402
from onnx import helper  # noqa: E402

import irtool  # noqa: E402
import irtool.onnx  # noqa: E402
from irtool.ir.gc_pause import gc_paused  # noqa: E402
from irtool.onnx.context import LoweringContext  # noqa: E402
from irtool.onnx.export import default_opset, validate  # noqa: E402
from irtool.onnx.layout import channels_first, has_channels_last_ops  # noqa: E402
from irtool.ops.fusion import fuse_matmul_add  # noqa: E402

# ---------------------------------------------------------------------------------------
# variant b: the lowering emits onnx-ir objects


def _py(value):
    """irtool attributes may hold NumPy scalars; onnx-ir infers attribute types from Python's."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    return value


class IRLoweringContext(LoweringContext):
    """``LoweringContext`` whose nodes and initializers are onnx-ir objects, wired by name."""

    def __init__(self, opset: int):
        super().__init__(opset)
        self.graph = ir.Graph([], [], nodes=[], opset_imports={"": opset})
        self.values: dict = {}

    def node(self, op_type: str, inputs: list, outputs=1, **attrs) -> list:
        base = f"{self.scope}/{op_type}" if self.scope else op_type
        if isinstance(outputs, int):
            outputs = [self.unique(base + ("" if i == 0 else f":{i}")) for i in range(outputs)]
        outs = [ir.Value(name=name) for name in outputs]
        self.values.update(zip(outputs, outs))
        attributes = {k: _py(v) for k, v in attrs.items()}
        ins = [self.values[name] if name else None for name in inputs]
        self.graph.append(ir.node(op_type, ins, attributes, outputs=outs, name=self._node_names(base)))
        return list(outputs)

    def add_initializer(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array, order="C")
        value = ir.Value(name=name, shape=ir.Shape(array.shape), const_value=ir.Tensor(array))
        value.dtype = value.const_value.dtype
        self.graph.register_initializer(value)
        self.values[name] = value
        self.constants[name] = array
        self.dtypes[name] = array.dtype.name
        self.shapes[name] = tuple(array.shape)

    def typed(self, name: str, dtype: str, dims) -> ir.Value:
        value = ir.val(name, ir.DataType.from_numpy(np.dtype(dtype)), dims)
        self.values[name] = value
        return value


def to_onnx_ir(model, check: bool = True) -> onnx.ModelProto:
    with gc_paused():
        return _to_onnx_ir(model, check)


def _to_onnx_ir(model, check):
    """``irtool.onnx.export._lower``'s driver, onnx-ir edition (same names, same order)."""
    opset = default_opset()
    graph = model._graph
    if has_channels_last_ops(graph):
        graph = channels_first(graph)
    graph = fuse_matmul_add(graph)  # as the export does (matmul_add lowers to Gemm)
    ctx = IRLoweringContext(opset)
    names, ranks = {}, {}
    for i, v in enumerate(graph.inputs):
        name = names[v] = ctx.unique(graph.name(v))
        spec = graph.spec(v)
        dims = ["batch" if j == 0 else f"dim_{i}_{j}" for j in range(len(spec.shape))]
        dims = [d if d is not None else n for d, n in zip(spec.shape, dims)]
        ctx.graph.inputs.append(ctx.typed(name, spec.dtype, dims))
        ctx.dtypes[name], ctx.shapes[name], ranks[name] = spec.dtype, tuple(spec.shape), len(spec.shape)
    output_names = list(model.output_names)
    final = {}
    for v, name in zip(graph.outputs, output_names):
        if v not in final and v not in names:
            final[v] = ctx.unique(name)
    for v in graph.values("weight"):
        names[v] = ctx.unique(graph.name(v))
        ctx.add_initializer(names[v], graph.constant_array(v))
    for key in graph.ops:
        op = graph.op(key)
        ins = []
        for v in op.inputs:
            if v not in names:
                names[v] = ctx.const(graph.constant_array(v), graph.name(v))
            ins.append(names[v])
        outs = []
        for v in op.outputs:
            spec = graph.spec(v)
            name = names[v] = final.get(v) or ctx.unique(graph.name(v))
            ctx.dtypes[name], ctx.shapes[name], ranks[name] = spec.dtype, tuple(spec.shape), len(spec.shape)
            outs.append(name)
        ctx.scope = ctx.layer = op.name.rsplit("/", 1)[0] if "/" in op.name else op.name
        op.prim.to_onnx(ctx, ins, outs, **op.attrs)
    ctx.scope = "output"
    for i, (v, name) in enumerate(zip(graph.outputs, output_names)):
        if final.get(v) is None or i != graph.outputs.index(v):
            name = ctx.unique(name)
            ctx.node("Identity", [names[v]], [name])
        else:
            name = final[v]
        value = ctx.values[name]
        spec = graph.spec(v)
        value.dtype, value.shape = ir.DataType.from_numpy(np.dtype(spec.dtype)), ir.Shape([None] * len(spec.shape))
        ctx.graph.outputs.append(value)

    from irtool import __version__

    ir_model = ir.Model(
        ctx.graph,
        ir_version=helper.find_min_ir_version_for([helper.make_opsetid("", opset)]),
        producer_name="irtool",
        producer_version=__version__,
        doc_string=f"irtool export of '{model.name}'",
        metadata_props={"irtool.version": __version__, "irtool.model_name": model.name},
    )
    ctx.graph.name = model.name
    ctx.graph.doc_string = f"{model.class_name} model '{model.name}' exported by irtool {__version__}"
    merge_transposes(ctx.graph)
    ir_passes.IdentityEliminationPass()(ir_model)
    fuse_gemm(ctx.graph, ctx, ranks)
    ir_passes.RemoveUnusedNodesPass()(ir_model)  # dead nodes and unused initializers
    proto = ir.serde.serialize_model(ir_model)
    return validate(proto) if check else proto


def merge_transposes(graph: ir.Graph) -> None:
    """Transpose(p2) of a single-use Transpose(p1) -> one Transpose, or Identity when they cancel."""
    for node in list(graph):
        first = node.inputs[0].producer() if node.op_type == "Transpose" else None
        if first is None or first.op_type != "Transpose" or len(first.outputs[0].uses()) != 1:
            continue
        if first.outputs[0].is_graph_output():
            continue
        p1, p2 = first.attributes["perm"].as_ints(), node.attributes["perm"].as_ints()
        perm = [p1[i] for i in p2]
        node.replace_input_with(0, first.inputs[0])
        if perm == list(range(len(perm))):
            node.op_type = "Identity"
            node.attributes.pop("perm")
        else:
            node.attributes["perm"] = ir.AttrInt64s("perm", perm)
        graph.remove(first, safe=True)


def fuse_gemm(graph: ir.Graph, ctx: LoweringContext, ranks: dict) -> None:
    """Rank-2 MatMul(a, W) -> Add(., b) with constant W (2-D) and b (1-D) -> Gemm(a, W, b)."""
    for add in list(graph):
        if add.op_type != "Add" or len(add.inputs) != 2:
            continue
        for mm_out, bias in (add.inputs, reversed(add.inputs)):
            matmul = mm_out.producer()
            if matmul is None or matmul.op_type != "MatMul" or len(mm_out.uses()) != 1 or mm_out.is_graph_output():
                continue
            a, w = matmul.inputs
            weight, b = ctx.constant_value(w.name), ctx.constant_value(bias.name)
            if ranks.get(a.name) != 2 or weight is None or b is None or weight.ndim != 2:
                continue
            if b.shape != (weight.shape[1],) or ctx.dtypes.get(a.name) not in ("float32", "float64", "float16"):
                continue
            # Rewrite the Add in place; the MatMul, now unused, goes with the dead nodes.
            add.op_type = "Gemm"
            add.name = matmul.name[: -len("MatMul")] + "Gemm" if matmul.name.endswith("MatMul") else matmul.name
            add.resize_inputs(3)
            for i, value in enumerate((a, w, bias)):
                add.replace_input_with(i, value)
            break


# ---------------------------------------------------------------------------------------
# checks and timing


def same_model(a: onnx.ModelProto, b: onnx.ModelProto, feed: np.ndarray) -> str:
    ops_a = collections.Counter(n.op_type for n in a.graph.node)
    ops_b = collections.Counter(n.op_type for n in b.graph.node)
    assert ops_a == ops_b, f"node ops differ: {ops_a} vs {ops_b}"
    assert len(a.graph.initializer) == len(b.graph.initializer), "initializer counts differ"
    assert [o.name for o in a.graph.output] == [o.name for o in b.graph.output], "output names differ"
    import onnxruntime as ort

    outs = []
    for proto in (a, b):
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        outs.append(session.run(None, {session.get_inputs()[0].name: feed})[0])
    assert np.array_equal(outs[0], outs[1]), "ONNX Runtime outputs differ"
    return f"{sum(ops_a.values())} nodes ({dict(ops_a.most_common(4))}), {len(a.graph.initializer)} initializers"


def bench(label: str, model, feed: np.ndarray, rounds: int) -> dict:
    reference = irtool.onnx.to_onnx(model)
    print(f"\n{label}: {same_model(reference, to_onnx_ir(model), feed)}; same ORT outputs", flush=True)
    fns = {
        "a": lambda: irtool.onnx.to_onnx(model),
        "b": lambda: to_onnx_ir(model),
        "a0": lambda: irtool.onnx.to_onnx(model, check=False),
        "b0": lambda: to_onnx_ir(model, check=False),
        "c": lambda: ir.serde.serialize_model(ir.serde.deserialize_model(reference)),
    }
    t = interleaved(fns, rounds, warmup=2)
    print(f"  a  to_onnx (validated)                 {fmt_s(t['a']):>9}")
    print(f"  b  onnx-ir build + passes + validate   {fmt_s(t['b']):>9}   b/a  = {t['b'] / t['a']:.2f}")
    print(f"  a0 to_onnx(check=False)                {fmt_s(t['a0']):>9}")
    print(f"  b0 onnx-ir, no validation              {fmt_s(t['b0']):>9}   b0/a0 = {t['b0'] / t['a0']:.2f}")
    print(f"  c  proto -> onnx-ir -> proto           {fmt_s(t['c']):>9}   c/a  = {t['c'] / t['a']:.2f}")
    return t


def repeated_output_check() -> None:
    """A model returning one tensor twice: irtool keeps an Identity so both outputs keep their
    names; onnx-ir's IdentityEliminationPass (1.1.0) renames the producer's value instead."""
    from irtool import layers

    inputs = irtool.Input((4,))
    x = layers.Dense(3)(inputs)
    y = layers.Activation("relu")(x)
    model = irtool.Model(inputs, [y, y, x])
    for label, proto in (("a", irtool.onnx.to_onnx(model)), ("b", to_onnx_ir(model))):
        print(f"  {label}: outputs {[o.name for o in proto.graph.output]}, {len(proto.graph.node)} nodes")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per variant (default 15)")
    args = parser.parse_args(argv)
    cal_start = calibrate()
    print("onnx-ir for irtool's export" + f" ({args.rounds} interleaved rounds, medians)")
    print(
        f"  Python {platform.python_version()}, numpy {np.__version__}, onnx {onnx.__version__}, "
        f"onnx-ir {ir.__version__}, irtool {irtool.__version__}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rng = np.random.default_rng(0)
    bench("1k-layer Dense(64) chain", irtool_chain(1000), rng.random((1, 64), dtype=np.float32), args.rounds)
    bench(
        "wide MLP 784-1024-1024-10 (17 MB of weights)",
        irtool_mlp(1024, "wide_mlp"),
        rng.random((1, 784), dtype=np.float32),
        args.rounds,
    )
    bench("toy ResNet (Keras guide)", toy_resnet(), rng.random((2, 32, 32, 3), dtype=np.float32), args.rounds)
    print("\nModel(inputs, [y, y, x]), a tensor returned twice:")
    repeated_output_check()
    cal_end = calibrate()
    print(
        f"\ncalibration loop {cal_start * 1e3:.1f} ms at start, {cal_end * 1e3:.1f} ms at end; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
