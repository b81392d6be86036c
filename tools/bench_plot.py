"""`irtool plot` of big ONNX graphs: wall seconds of the command, per renderer.

The files: irtool's own export of keras.applications-style networks (weights=None) and, with
``--keras``, Keras' ``model.export(format="onnx")`` of the same architecture (the torch backend's
exporter writes 3-4x more nodes: an ``Identity`` per weight, ``Cast``s, unfused BatchNormalization).
Each file is drawn to a PNG by the CLI, ``irtool plot FILE -o x.png --renderer R``, in a fresh
process (the time a user waits, imports included), once per renderer found (Graphviz's ``dot``,
the pip-installed ``graphviz-pure``); rounds alternate the renderers, and the table gives the
median and the range. Target (issue 18): <= 5 s for a ~900-node graph.

Run:  python tools/bench_plot.py [--models DenseNet121] [--rounds 3] [--keras]
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_export import run_child  # noqa: E402

from irtool.viz.render import available_renderers  # noqa: E402

TARGET_S = 5.0


def irtool_export(name: str, folder: str) -> str:
    import irtool
    from irtool.onnx import export_onnx

    irtool.utils.set_random_seed(0)
    path = os.path.join(folder, f"{name}.onnx")
    export_onnx(getattr(irtool.applications, name)(weights=None), path)
    return path


def plot_seconds(path: str, renderer: str, folder: str) -> float:
    """Wall seconds of one ``irtool plot`` process drawing ``path`` to a PNG."""
    out = os.path.join(folder, "plot.png")
    command = [sys.executable, "-m", "irtool", "plot", path, "-o", out, "--renderer", renderer]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="DenseNet121")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keras", action="store_true", help="also draw Keras' own export of each model")
    args = parser.parse_args()
    renderers = [r.name for r in available_renderers()]
    if not renderers:
        sys.exit("no renderer found: install Graphviz (apt-get install graphviz) or `pip install graphviz-pure`")
    with open("/proc/loadavg") as f:
        print(f"load average at start: {' '.join(f.read().split()[:3])}")
    print(f"renderers: {', '.join(renderers)}; {args.rounds} rounds, the order alternating")
    print("| file | nodes | renderer | `irtool plot` median | range | target | met? |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for name in args.models.split(","):
            files.append((f"irtool's {name} export", irtool_export(name, folder)))
            if args.keras:
                run_child(["--keras-child", name, "--folder", folder])
                files.append((f"Keras' {name} export", os.path.join(folder, f"{name}_keras.onnx")))
        for label, path in files:
            nodes = len(onnx.load(path, load_external_data=False).graph.node)
            times: dict = {r: [] for r in renderers}
            for r in range(args.rounds):
                for renderer in renderers if r % 2 == 0 else renderers[::-1]:
                    times[renderer].append(plot_seconds(path, renderer, folder))
            for renderer, seconds in times.items():
                median = statistics.median(seconds)
                met = "yes" if median <= TARGET_S else "**no**"
                print(
                    f"| {label} | {nodes} | {renderer} | {median:.1f} s | {min(seconds):.1f}-{max(seconds):.1f} s "
                    f"| <= {TARGET_S:.0f} s | {met} |",
                    flush=True,
                )
    with open("/proc/loadavg") as f:
        print(f"load average at end: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
