#!/usr/bin/env python3
"""``irtool extract`` against ``onnx.utils.extract_model`` on the same cuts. A measurement, not a test.

    python tools/bench_extract.py              # 1,000-node model and a 2.25 GB external-data model
    python tools/bench_extract.py --skip-large # the 1,000-node model only

Models (made here, in a temporary folder removed at the end):

  chain  1,000 nodes: 500 x (MatMul by a 64x64 weight, Relu) on x[batch, 64], with a symbolic
         batch dim, metadata_props, doc strings and no value_info (as many exporters write them);
         cut from the input to the 700th node's output.
  large  9 x (MatMul by an 8192x8192 float32 weight) = 2.25 GiB of zeros as external data (a
         sparse file, so it takes no disk until written); cut after the 5th MatMul (1.25 GiB).

Each tool runs in its own subprocess: wall time of the whole cut (load, cut, write, check) and
the peak resident memory it added (``/proc/self/status`` VmHWM, reset through ``clear_refs``
after the imports). Then the cut is inspected: are the symbolic dim, metadata_props and the
doc strings still there, and does ``onnx.checker`` (full_check, by path) accept it?
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir)

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    import onnx, onnx.utils
    from irtool.onnx import extract_cut, save_cut

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    tool, source, out, inputs, outputs = sys.argv[1:6]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = rss("VmRSS:")
    start = time.perf_counter()
    error = None
    try:
        if tool == "irtool":
            save_cut(extract_cut(source, outputs.split(","), inputs.split(",")), out)
        else:
            onnx.utils.extract_model(source, out, inputs.split(","), outputs.split(","), check_model=True)
    except Exception as e:
        error = f"{{type(e).__name__}}: {{' '.join(str(e).split())[:160]}}"
    seconds = time.perf_counter() - start
    print(json.dumps({{"seconds": seconds, "peak_mb": (rss("VmHWM:") - base) / 2**20, "error": error}}))
    """
).format(root=ROOT)


def chain_model(path: str, pairs: int = 500) -> tuple[list, list]:
    rng = np.random.default_rng(0)
    nodes, weights, last = [], [], "x"
    for i in range(pairs):
        weights.append(numpy_helper.from_array((rng.standard_normal((64, 64)) * 0.1).astype(np.float32), f"w{i}"))
        nodes.append(
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"], name=f"matmul_{i}", doc_string=f"layer {i}")
        )
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu_{i}"))
        last = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", 64])],
        weights,
        doc_string="a 1,000-node chain",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    helper.set_model_props(model, {"license": "mit"})
    onnx.save(model, path)
    return ["x"], ["r349"]  # the 700th node's output


def large_model(folder: str, count: int = 9, size: int = 8192) -> tuple[str, list, list]:
    """A model whose 2.25 GiB of zero weights live in a sparse external file (no disk until read)."""
    nbytes = size * size * 4
    data = os.path.join(folder, "large.bin")
    with open(data, "wb") as f:
        f.truncate(nbytes * count)
    nodes, weights, last = [], [], "x"
    for i in range(count):
        tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[size, size])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "large.bin"), ("offset", str(i * nbytes)), ("length", str(nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        weights.append(tensor)
        nodes.append(helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"], name=f"matmul_{i}"))
        last = f"m{i}"
    graph = helper.make_graph(
        nodes,
        "large",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", size])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", size])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    helper.set_model_props(model, {"license": "mit"})
    path = os.path.join(folder, "large.onnx")
    onnx.save(model, path)
    return path, ["x"], ["m4"]


def run_tool(tool: str, source: str, out: str, inputs: list, outputs: list) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", WORKER, tool, source, out, ",".join(inputs), ",".join(outputs)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"seconds": float("nan"), "peak_mb": float("nan"), "error": result.stderr.strip()[-200:]}
    return json.loads(lines[-1])


def inspect(out: str) -> dict:
    if not os.path.exists(out):
        return {}
    model = onnx.load(out, load_external_data=False)
    try:
        onnx.checker.check_model(out, full_check=True)
        checker = "ok"
    except Exception as error:  # a measurement: record what the checker said
        checker = " ".join(str(error).split())[:80]
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return {
        "batch dim": dim.dim_param or (dim.dim_value if dim.HasField("dim_value") else "?"),
        "metadata": "yes" if any(p.key == "license" for p in model.metadata_props) else "no",
        "doc strings": bool(model.graph.doc_string or any(n.doc_string for n in model.graph.node)),
        "producer": model.producer_name or "-",
        "checker": checker,
        "MB on disk": sum(
            os.path.getsize(os.path.join(os.path.dirname(out), f)) for f in os.listdir(os.path.dirname(out))
        )
        / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="skip the 2.25 GiB external-data model")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        chain = os.path.join(folder, "chain.onnx")
        cases = [("chain (1,000 nodes)", chain, *chain_model(chain))]
        if not args.skip_large:
            cases.append(("large (2.25 GiB external)", *large_model(folder)))
        for label, source, inputs, outputs in cases:
            for tool in ("irtool", "onnx.utils"):
                out_folder = os.path.join(folder, f"out-{tool}-{len(rows)}")
                os.mkdir(out_folder)
                out = os.path.join(out_folder, "cut.onnx")
                start = time.perf_counter()
                measured = run_tool(tool, source, out, inputs, outputs)
                measured["process s"] = time.perf_counter() - start
                rows.append((label, tool, measured, inspect(out)))
                for name in os.listdir(out_folder):  # bound the disk use: one cut at a time
                    os.unlink(os.path.join(out_folder, name))
    print(
        "| model | tool | cut s | peak MB added | batch dim | metadata kept | doc strings | checker | cut MB | error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, tool, m, i in rows:
        print(
            f"| {label} | {tool} | {m['seconds']:.2f} | {m['peak_mb']:.0f} | {i.get('batch dim', '-')} | "
            f"{i.get('metadata', '-')} | {i.get('doc strings', '-')} | {i.get('checker', '-')} | "
            f"{i.get('MB on disk', 0):.0f} | {m.get('error') or ''} |"
        )


if __name__ == "__main__":
    main()
