#!/usr/bin/env python3
"""Before/after: the same irtool measurements on two git revisions, interleaved, with ratios.

    python tools/bench_revisions.py BEFORE [AFTER]     # AFTER defaults to the working tree
    python tools/bench_revisions.py 040ae3b --rounds 7

Each revision is checked out into a temporary git worktree (the working tree itself for AFTER
when it is omitted). Every round runs one short child process per revision, alternating which
goes first, so both see the same machine load; each child times every case (median of its
repeats) and prints JSON. The table gives the median over rounds and AFTER/BEFORE per case
(below 1 is faster). Cases: building a 1,000-layer Dense chain, its first export and a
repeated one (a model keeps the fused graph its first predict or export made), batch-1
``predict`` of the MNIST MLP, the chain and a wide MLP, and a toy ResNet training step. This is
a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import gc, json, statistics, sys, time
import numpy as np
import irtool as keras
from irtool import layers

def timed(fn, repeats):
    fn()
    out = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return statistics.median(out)

def chain(n=1000):
    x = inputs = keras.Input((64,))
    for _ in range(n):
        x = layers.Dense(64)(x)
    return keras.Model(inputs, x)

def mlp():
    inputs = keras.Input((784,))
    x = layers.Dense(64, activation="relu")(inputs)
    x = layers.Dense(64, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(10)(x))

def wide():
    inputs = keras.Input((784,))
    x = layers.Dense(1024, activation="relu")(inputs)
    x = layers.Dense(1024, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(10)(x))

def toy_resnet():
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    b1 = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(b1)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    b2 = layers.add([x, b1])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(b2)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    x = layers.add([x, b2])
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(10)(x))

rng = np.random.default_rng(0)
results = {}
results["build 1k chain"] = timed(chain, 3)
firsts = []
for _ in range(3):  # a model's first export, which also pays for passes whose result the model keeps
    fresh = chain()
    gc.collect()
    t = time.perf_counter(); keras.onnx.to_onnx(fresh); firsts.append(time.perf_counter() - t)
results["first to_onnx 1k chain"] = statistics.median(firsts)
model = chain()
results["to_onnx 1k chain (again)"] = timed(lambda: keras.onnx.to_onnx(model), 5)
x = rng.standard_normal((1, 64)).astype("float32")
results["predict b1 1k chain"] = timed(lambda: model.predict(x, verbose=0), 50)
for name, build, size in (("MNIST MLP", mlp, 784), ("wide MLP", wide, 784)):
    m = build()
    xb = rng.standard_normal((1, size)).astype("float32")
    results[f"predict b1 {name}"] = timed(lambda: [m.predict(xb, verbose=0) for _ in range(100)], 7) / 100
net = toy_resnet()
net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
xi = rng.standard_normal((64, 32, 32, 3)).astype("float32")
yi = rng.integers(0, 10, 64)
results["train step toy ResNet b64"] = timed(lambda: net.train_on_batch(xi, yi), 5)
print(json.dumps(results))
"""


def _checkout(revision: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(folder), revision], check=True)
    return folder


def _measure(tree: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="git revision measured as BEFORE")
    parser.add_argument("after", nargs="?", help="git revision measured as AFTER (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="irtool-bench-") as tmp:
        trees = {"before": _checkout(args.before, Path(tmp) / "before")}
        trees["after"] = _checkout(args.after, Path(tmp) / "after") if args.after else ROOT
        try:
            runs: dict = {"before": [], "after": []}
            for r in range(args.rounds):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for side in order:
                    runs[side].append(_measure(trees[side]))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"| case | before ({args.before}) | after ({args.after or 'working tree'}) | after/before |")
    print("|---|---|---|---|")
    for case in runs["before"][0]:
        b = statistics.median(run[case] for run in runs["before"])
        a = statistics.median(run[case] for run in runs["after"])
        print(f"| {case} | {b * 1e3:.3f} ms | {a * 1e3:.3f} ms | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
