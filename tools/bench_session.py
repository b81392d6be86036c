"""Session overhead: ``irtool.runtime.Session.run`` and ``irtool run --benchmark`` against raw ONNX Runtime.

1. ``Session.run(x)`` (and with a dict) against ``onnxruntime.InferenceSession.run(None, {...})`` at
   batch 1 on the MNIST MLP (examples/mnist_mlp.py, 784-64-64-10), both sessions on the same
   bytes with the same options. Target: at most 1.05x.
2. ``irtool run model.onnx --benchmark N --json`` (p50) against a hand-written loop timing
   ``InferenceSession.run`` call by call with ``time.perf_counter_ns`` (p50). Target: equal within noise.

Rounds of the contenders alternate, and each figure is the median over rounds of a per-round
best (timeit) or p50 (the loops), so a burst of load on a shared machine hits both sides.

    python tools/bench_session.py [--rounds 7] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import timeit

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from irtool.cli import main as cli_main  # noqa: E402
from irtool.loading import load_model  # noqa: E402
from irtool.runtime import Session  # noqa: E402
from irtool.runtime.ort import session_options  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def per_call(fn, number: int) -> float:
    """Best of 3 timeit repeats, in seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number


def hand_written_p50(raw: ort.InferenceSession, feed: dict, runs: int) -> float:
    for _ in range(3):
        raw.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        raw.run(None, feed)
        times.append(time.perf_counter_ns() - start)
    return float(np.percentile(times, 50)) / 1e6


def cli_p50(path: str, runs: int) -> float:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert cli_main(["run", path, "--benchmark", str(runs), "--json"]) == 0
    return json.loads(buffer.getvalue())["p50_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=5000, help="calls per timeit repeat")
    parser.add_argument("--runs", type=int, default=2000, help="timed runs per --benchmark round")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    model = load_model(os.path.join(ROOT, "examples", "mnist_mlp.py"))
    blob = model.to_onnx().SerializeToString()
    session = Session(blob)
    raw = ort.InferenceSession(blob, session_options(), providers=["CPUExecutionProvider"])
    name = session.input_names[0]
    x = np.random.default_rng(0).standard_normal((1, 784)).astype("float32")
    feed = {name: x}
    np.testing.assert_array_equal(session.run(x)[session.output_names[0]], raw.run(None, feed)[0])

    raw_t, run_t, dict_t = [], [], []
    for _ in range(args.rounds):
        raw_t.append(per_call(lambda: raw.run(None, feed), args.number))
        run_t.append(per_call(lambda: session.run(x), args.number))
        dict_t.append(per_call(lambda: session.run(feed), args.number))

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mnist.onnx")
        with open(path, "wb") as handle:
            handle.write(blob)
        hand, cli = [], []
        for _ in range(args.rounds):
            hand.append(hand_written_p50(raw, feed, args.runs))
            cli.append(cli_p50(path, args.runs))

    raw_m, run_m, dict_m = (statistics.median(t) * 1e6 for t in (raw_t, run_t, dict_t))
    for label, times in (("InferenceSession.run", raw_t), ("Session.run(x)", run_t), ("Session.run(dict)", dict_t)):
        print(f"per round, {label}: {', '.join(f'{t * 1e6:.2f}' for t in times)} us")
    hand_m, cli_m = statistics.median(hand) * 1e3, statistics.median(cli) * 1e3
    rows = [
        ("Session.run(x), batch 1, MNIST MLP", f"{run_m:.2f} us", "InferenceSession.run", f"{raw_m:.2f} us",
         run_m / raw_m, "<= 1.05x"),
        ("Session.run({name: x}), batch 1", f"{dict_m:.2f} us", "InferenceSession.run", f"{raw_m:.2f} us",
         dict_m / raw_m, "<= 1.05x"),
        ("irtool run --benchmark p50", f"{cli_m:.2f} us", "hand-written ORT loop p50", f"{hand_m:.2f} us",
         cli_m / hand_m, "within noise"),
    ]  # fmt: skip
    print(
        f"onnxruntime {ort.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs; {args.rounds} rounds, "
        "medians of per-round figures"
    )
    if args.markdown:
        print("| measure | irtool | peer | peer time | ratio | target |")
        print("|---|---|---|---|---|---|")
        for what, ours, peer, theirs, ratio, target in rows:
            print(f"| {what} | {ours} | {peer} | {theirs} | {ratio:.3f} | {target} |")
    else:
        for what, ours, peer, theirs, ratio, target in rows:
            print(f"{what:40} {ours:>10}  vs {peer:28} {theirs:>10}  ratio {ratio:.3f}  (target {target})")


if __name__ == "__main__":
    main()
