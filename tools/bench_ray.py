"""Ray Serve and Ray Data against irtool's own server and an in-process loop, in one bounded run.

    python tools/bench_ray.py                # ~3 minutes on 2 cores (needs wrk and the ray extra)

Online (loopback only, `wrk --latency` as in tools/bench_serving.py, each run `--seconds` long):
the guide's MNIST MLP (examples/mnist_mlp.py) served by `irtool serve` (one process, with and
without `--max-batch-size 64`) and by `irtool serve --ray --replicas 2 --max-batch-size 64` (a
new local Ray cluster: Ray Serve's HTTP proxy in front of 2 replicas, one ONNX Runtime thread each),
at concurrency 1 and 64, JSON and binary bodies.

Offline: the MLP cut at its second hidden layer (a 64-wide feature extractor, irtool's submodel
API) over `--rows` rows of 784 floats: a single in-process `Session` loop over 1,024-row batches
(1 and 2 ONNX Runtime threads) against `irtool.runtime.ray.map_batches` with 1 and 2 actors
(one thread each) on `ray.init(num_cpus=2)`, timed from the dataset's creation to the last
output batch (the cluster start is not counted). The load generator, the proxy, the replicas and
the driver share this machine's cores: compare rows of one run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import ray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_serving import bodies, free_port, start, stop  # noqa: E402

import irtool  # noqa: E402
from irtool.loading import load_model  # noqa: E402
from irtool.runtime import Session  # noqa: E402
from irtool.runtime.ray import map_batches, onnx_bytes  # noqa: E402


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    """bench_serving's wrk run, but counting non-2xx answers instead of failing on them: `irtool serve`
    answers about 1 in 3,000 of wrk's identical requests with a 400 (both servers' counts are shown)."""
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1" if connections < 8 else "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50": latency(50),
        "p99": latency(99),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
    }


def start_ray_serve(onnx_path: Path, port: int):
    """`irtool serve --ray` in a subprocess, returned once it prints that it serves (Ray needs ~20 s)."""
    command = [sys.executable, "-m", "irtool", "serve", f"mnist_mlp={onnx_path}", "--ray", "--replicas", "2"]
    command += ["--max-batch-size", "64", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while not any("serving on" in line for line in lines):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("irtool serve --ray did not start:\n" + "".join(lines))
        time.sleep(0.2)
    return process


def online(folder: Path, model, seconds: float, rows: list) -> None:
    onnx_path = folder / "mnist_mlp.onnx"
    onnx_path.write_bytes(model.to_onnx().SerializeToString())
    x = np.random.default_rng(0).random((1, 784), dtype=np.float32)
    scripts = bodies(folder, Session(str(onnx_path)).inputs[0].name, x)
    servers = {
        "irtool serve": [sys.executable, "-m", "irtool", "serve", f"mnist_mlp={onnx_path}"],
        "irtool serve, batch 64": [
            sys.executable, "-m", "irtool", "serve", f"mnist_mlp={onnx_path}", "--max-batch-size", "64",
        ],
        "Ray Serve, 2 replicas, batch 64": None,
    }  # fmt: skip
    for server, command in servers.items():
        port = free_port()
        process = start_ray_serve(onnx_path, port) if command is None else start([*command, "--port", str(port)], port)
        try:
            url = f"http://127.0.0.1:{port}/v2/models/mnist_mlp/infer"
            for kind in ("json", "binary"):
                wrk(url, scripts[kind], 8, 1)  # warm-up (wrk takes whole seconds: "1.0s" is a usage error)
                for c in (1, 64):
                    r = wrk(url, scripts[kind], c, seconds)
                    rows.append((server, kind, c, r["p50"], r["p99"], r["rps"], f"{r['errors']}/{r['requests']}"))
                    print(f"{server:<32} {kind:<7} c={c:<3} p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  {r['rps']:,.0f} req/s, non-2xx {r['errors']}", flush=True)  # fmt: skip
        finally:
            stop(process)


def offline(extractor, count: int, rows: list) -> None:
    data = np.random.default_rng(1).random((count, 784), dtype=np.float32)
    model = onnx_bytes(extractor)
    for threads in (1, 2):
        session = Session(model, threads=threads)
        started = time.perf_counter()
        out = [session.run_list(data[i : i + 1024])[0] for i in range(0, count, 1024)]
        seconds = time.perf_counter() - started
        assert sum(len(o) for o in out) == count
        rows.append((f"in-process Session loop, {threads} thread(s)", count / seconds))
        print(f"{rows[-1][0]:<40} {rows[-1][1]:,.0f} rows/s", flush=True)
    want = np.concatenate(out)
    output = session.output_names[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for actors in (1, 2, 1, 2):  # each twice: the first run of a kind also warms Ray's workers up
            started = time.perf_counter()
            dataset = ray.data.from_numpy(data).repartition(16)
            result = map_batches(
                dataset, model, columns={"img": "data"}, batch_size=1024, concurrency=actors, num_cpus=1 / actors
            )
            got = np.concatenate([b[output] for b in result.iter_batches(batch_size=None)])
            seconds = time.perf_counter() - started
            assert np.array_equal(got, want)
            label = f"Ray Data map_batches, {actors} actor(s)"
            rows[:] = [r for r in rows if r[0] != label]  # keep the second (warm) run
            rows.append((label, count / seconds))
            print(f"{label:<40} {count / seconds:,.0f} rows/s ({seconds:.1f} s)", flush=True)
    finally:
        ray.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the Ray Data part")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench_ray: wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    model = load_model(ROOT / "examples" / "mnist_mlp.py")
    extractor = irtool.Model(model.input, model.layers[2].output, name="features")
    folder = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    serving, batch = [], []
    try:
        online(folder, model, args.seconds, serving)
        offline(extractor, args.rows, batch)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n| server | body | concurrency | p50 ms | p99 ms | req/s | non-2xx |\n|---|---|---|---|---|---|---|")
    for row in serving:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]:.3f} | {row[4]:.3f} | {row[5]:,.0f} | {row[6]} |")
    print("\n| feature extraction | rows/s |\n|---|---|")
    for label, rate in batch:
        print(f"| {label} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
