"""Issue 18's executor and trainer rows: NumPy ``predict`` vs ONNX Runtime, training step vs PyTorch.

    python tools/bench_executor_trainer.py [--rounds 9] [--only predict|train] [--profile] [--threads N]
    taskset -c 1 python tools/bench_executor_trainer.py --threads 1   # on a loaded machine

Inference: ``model.predict(x, verbose=0)`` at batch 1 against ``InferenceSession.run`` on
irtool's own export of the same model (default session options), for the MNIST MLP
784-64-64-10, a 1,000-layer Dense(64) chain and the wide MLP 784-1024-1024-10. Training: one
SGD step (forward, backward, update) against PyTorch CPU on the same architecture, weights and
batch: MLP 784-256-256-10 at batch 128 and the Keras guide's toy ResNet at batch 64.

Every round times irtool and the peer back to back (the order flips each round) and the ratio
printed is the median of the per-round ratios, so a burst of load from other processes on the
machine hits both sides. The load average is printed with the table. This is a benchmark, not
a test; ``--profile`` adds a cProfile of each irtool case. ``--threads N`` pins NumPy's BLAS
(threadpoolctl), PyTorch and ONNX Runtime to N threads: on a machine whose cores are busy with
other jobs, spinning worker pools make multi-threaded timings meaningless (both sides swing
10x between runs), while one thread per side on one pinned core stays comparable.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import irtool  # noqa: E402
from irtool import layers  # noqa: E402


def per_call(fn, budget_s: float) -> float:
    """Seconds per call of ``fn``, looping for about ``budget_s`` (best of 3 such loops)."""
    fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s / 10:
        fn()
        n += 1
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n * 3):
            fn()
        best = min(best, (time.perf_counter() - start) / (n * 3))
    return best


def interleaved(ours, peer, rounds: int, budget_s: float) -> tuple[float, float, float]:
    """(median irtool time, median peer time, median per-round ratio)."""
    mine, theirs, ratios = [], [], []
    for r in range(rounds):
        if r % 2:
            b = per_call(peer, budget_s)
            a = per_call(ours, budget_s)
        else:
            a = per_call(ours, budget_s)
            b = per_call(peer, budget_s)
        mine.append(a)
        theirs.append(b)
        ratios.append(a / b)
    return statistics.median(mine), statistics.median(theirs), statistics.median(ratios)


def mlp(width: int):
    inputs = irtool.Input((784,))
    x = layers.Dense(width, activation="relu")(inputs)
    x = layers.Dense(width, activation="relu")(x)
    return irtool.Model(inputs, layers.Dense(10)(x))


def chain(n: int = 1000):
    x = inputs = irtool.Input((64,))
    for _ in range(n):
        x = layers.Dense(64)(x)
    return irtool.Model(inputs, x)


def predict_rows(rounds: int, profile: bool, threads: int | None) -> list:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads

    rng = np.random.default_rng(0)
    rows = []
    for label, model, width, target in (
        ("predict b=1, MNIST MLP 784-64-64-10", mlp(64), 784, 1.2),
        ("predict b=1, 1k-layer Dense(64) chain", chain(), 64, 1.3),
        ("predict b=1, wide MLP 784-1024-1024-10", mlp(1024), 784, 1.1),
    ):
        x = rng.random((1, width), dtype=np.float32)
        proto = irtool.onnx.to_onnx(model).SerializeToString()
        session = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        ours = model.predict(x, verbose=0)
        error = float(np.max(np.abs(ours - session.run(None, feed)[0])) / (np.max(np.abs(ours)) or 1))
        t_ours, t_peer, ratio = interleaved(
            lambda m=model, x=x: m.predict(x, verbose=0), lambda s=session, f=feed: s.run(None, f), rounds, 0.1
        )
        rows.append((label, t_ours, f"ORT {ort.__version__}", t_peer, ratio, target, f"max rel diff {error:.1e}"))
        if profile:
            calls = 2000 if width == 784 else 50
            show_profile(label, lambda m=model, x=x, k=calls: [m.predict(x, verbose=0) for _ in range(k)])
    return rows


def train_rows(rounds: int, profile: bool) -> list:
    import torch
    from bench_layers import toy_resnet
    from bench_trainer import irtool_step, mlp_irtool, mlp_torch, resnet_torch, torch_step

    rng = np.random.default_rng(0)
    irtool.utils.set_random_seed(0)
    rows = []
    x = rng.standard_normal((128, 784)).astype("float32")
    y = rng.integers(0, 10, 128).astype("int64")
    model = mlp_irtool()
    cases = [("train step, MLP 784-256-256-10 b128", model, x, y, torch_step(mlp_torch(model), x, y), 1.0, 0.2)]
    resnet = toy_resnet()
    resnet.compile(
        optimizer=irtool.optimizers.SGD(0.01), loss=irtool.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    xr = rng.random((64, 32, 32, 3), dtype="float32")
    yr = rng.integers(0, 10, 64).astype("int64")
    peer = torch_step(resnet_torch(resnet), xr.transpose(0, 3, 1, 2).copy(), yr)
    cases.append(("train step, toy ResNet b64", resnet, xr, yr, peer, 1.5, 0.6))
    for label, net, xs, ys, peer_step, target, budget in cases:
        step = irtool_step(net, xs, ys)
        t_ours, t_peer, ratio = interleaved(step, peer_step, rounds, budget)
        rows.append((label, t_ours, f"torch {torch.__version__} CPU", t_peer, ratio, target, ""))
        if profile:
            steps = 200 if "MLP" in label else 10
            show_profile(label, lambda s=step, k=steps: [s() for _ in range(k)])
    return rows


def show_profile(label: str, fn) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    print(f"\ncProfile, {label} (tottime):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=["predict", "train"], action="append")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="threads per library (default: their own)")
    args = parser.parse_args(argv)
    only = set(args.only or ["predict", "train"])
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # stays in force for the whole run
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = []
    if "predict" in only:
        rows += predict_rows(args.rounds, args.profile, args.threads)
    if "train" in only:
        rows += train_rows(max(3, args.rounds // 2), args.profile)
    cores = len(os.sched_getaffinity(0))
    print(f"\nload average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; {cores} of {os.cpu_count()} CPUs")
    print(f"threads per library: {args.threads or 'library defaults'}")
    print("| case | irtool | peer | peer time | irtool/peer (median of rounds) | target | met? | note |")
    print("|---|---|---|---|---|---|---|---|")
    for label, ours, peer_name, peer, ratio, target, note in rows:
        met = "yes" if ratio <= target else "**no**"
        print(f"| {label} | {fmt(ours)} | {peer_name} | {fmt(peer)} | {ratio:.2f} | <= {target} | {met} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
