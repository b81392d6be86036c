"""Real-model export benchmark: keras.applications networks (weights=None) exported by irtool,
against writing the same bytes (``onnx.save``) and, with ``--keras``, Keras' own ``export``.

Per model, in a fresh child process (so its peak memory is its own):
  1. peak resident memory added by the first ``export_onnx`` (``/proc/self/status`` VmHWM, reset
     through ``clear_refs``) over the built model, in units of W, the model's weight bytes;
  2. ``export_onnx`` to a file against ``onnx.save`` of the proto it returned, rounds interleaved
     (the order flips each round), wall and CPU medians and their ratio; ``to_onnx`` alone;
  3. the export's node count and ONNX Runtime latency (CPU, default options) at batch 1 and 32;
  4. (``--memory-only``: the peak of item 1 only, also after one small export that loads what a
     process's first export loads);
  5. with ``--keras``: ``keras.applications`` (KERAS_BACKEND, default torch) ``model.export(format="onnx")``
     of the same architecture, once (it takes seconds to tens of seconds), its node count and latency.

Run:  python tools/bench_export.py [--models ResNet50,MobileNetV2] [--rounds 5] [--keras]
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODELS = ("ResNet50", "MobileNetV2", "DenseNet121", "EfficientNetB0")


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _latency(path: str, rounds: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0]
    out = {}
    for batch in (1, 32):
        shape = [batch] + [d if isinstance(d, int) else 224 for d in declared.shape[1:]]
        feeds = {declared.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        session.run(None, feeds)
        times = []
        for _ in range(rounds if batch == 1 else max(3, rounds // 2)):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        out[f"b{batch}"] = statistics.median(times)
    return out


def child(name: str, rounds: int, folder: str, warm: bool = False) -> dict:
    import gc

    import onnx

    import irtool
    from irtool.onnx import export_onnx, to_onnx

    irtool.utils.set_random_seed(0)
    if warm:  # one small export first: what the first export of a process loads (onnx's checker...) is not counted
        inputs = irtool.Input((16, 16, 3))
        x = irtool.layers.Conv2D(8, 3)(inputs)
        x = irtool.layers.BatchNormalization()(x)
        x = irtool.layers.DepthwiseConv2D(3)(x)
        x = irtool.layers.GlobalAveragePooling2D()(x)
        export_onnx(irtool.Model(inputs, irtool.layers.Dense(4)(x)), os.path.join(folder, "warm.onnx"))
    model = getattr(irtool.applications, name)(weights=None)
    weight_bytes = sum(w.numpy().nbytes for w in model.weights)
    path, copy = os.path.join(folder, f"{name}.onnx"), os.path.join(folder, f"{name}_save.onnx")
    gc.collect()
    base = _rss("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    first = time.perf_counter()
    proto = export_onnx(model, path)
    first = time.perf_counter() - first
    peak = _rss("VmHWM:") - base
    cases = {
        "export_onnx": lambda: export_onnx(model, path),
        "onnx.save": lambda: onnx.save(proto, copy),
        "to_onnx": lambda: to_onnx(model),
    }
    wall: dict = {k: [] for k in cases}
    cpu: dict = {k: [] for k in cases}
    for r in range(rounds):
        for key in list(cases) if r % 2 == 0 else list(cases)[::-1]:
            gc.collect()
            w, c = time.perf_counter(), time.process_time()
            cases[key]()
            wall[key].append(time.perf_counter() - w)
            cpu[key].append(time.process_time() - c)
    return {
        "model": name,
        "weights_mb": weight_bytes / 1e6,
        "file_mb": os.path.getsize(path) / 1e6,
        "peak_w": peak / weight_bytes,
        "first_export": first,
        "wall": {k: statistics.median(v) for k, v in wall.items()},
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
        "nodes": len(proto.graph.node),
        "ort": _latency(path, 20),
    }


def keras_child(name: str, folder: str) -> dict:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import warnings

    import numpy as np
    import onnx

    warnings.simplefilter("ignore")
    import keras

    model = getattr(keras.applications, name)(weights=None)
    model.predict(np.zeros((1, 224, 224, 3), "float32"), verbose=0)  # Keras exports called models only
    path = os.path.join(folder, f"{name}_keras.onnx")
    start = time.perf_counter()
    model.export(path, format="onnx", verbose=False)
    seconds = time.perf_counter() - start
    nodes = len(onnx.load(path, load_external_data=False).graph.node)
    return {"export": seconds, "nodes": nodes, "ort": _latency(path, 20), "version": keras.__version__}


def run_child(args: list) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keras", action="store_true", help="also time Keras' own export (slow)")
    parser.add_argument("--memory-only", action="store_true", help="only the peak memory, cold and warm")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keras-child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rounds, args.folder, args.warm)))
        return
    if args.keras_child:
        print(json.dumps(keras_child(args.keras_child, args.folder)))
        return
    with open("/proc/loadavg") as f:
        print(f"load average at start: {' '.join(f.read().split()[:3])}")
    with tempfile.TemporaryDirectory() as folder:
        if args.memory_only:
            print("| model | weights MB | peak above model, first export of the process | after a small export |")
            print("|---|---|---|---|")
            for name in args.models.split(","):
                cold = run_child(["--child", name, "--rounds", "1", "--folder", folder])
                warm = run_child(["--child", name, "--rounds", "1", "--folder", folder, "--warm"])
                print(f"| {name} | {cold['weights_mb']:.1f} | {cold['peak_w']:.2f} W | {warm['peak_w']:.2f} W |")
            return
        print(
            "| model | weights MB | peak above model | first export | export_onnx / onnx.save (wall, CPU) "
            "| to_onnx CPU | nodes | ORT b1 / b32 | Keras export | Keras nodes | Keras ORT b1 / b32 |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in args.models.split(","):
            r = run_child(["--child", name, "--rounds", str(args.rounds), "--folder", folder])
            wall, cpu = r["wall"], r["cpu"]
            ratio_wall = wall["export_onnx"] / wall["onnx.save"]
            ratio_cpu = cpu["export_onnx"] / cpu["onnx.save"]
            row = (
                f"| {name} | {r['weights_mb']:.1f} | {r['peak_w']:.2f} W | {r['first_export']:.2f} s "
                f"| {wall['export_onnx'] * 1e3:.0f} / {wall['onnx.save'] * 1e3:.0f} ms = {ratio_wall:.2f}; "
                f"CPU {cpu['export_onnx'] * 1e3:.0f} / {cpu['onnx.save'] * 1e3:.0f} ms = {ratio_cpu:.2f} "
                f"| {cpu['to_onnx'] * 1e3:.0f} ms | {r['nodes']} "
                f"| {r['ort']['b1'] * 1e3:.2f} / {r['ort']['b32'] * 1e3:.1f} ms |"
            )
            if args.keras:
                k = run_child(["--keras-child", name, "--folder", folder])
                row += f" {k['export']:.1f} s | {k['nodes']} | {k['ort']['b1'] * 1e3:.2f} / {k['ort']['b32'] * 1e3:.1f} ms |"
            else:
                row += " — | — | — |"
            print(row, flush=True)
    with open("/proc/loadavg") as f:
        print(f"load average at end: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
