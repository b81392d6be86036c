"""`irtool serve` under load from a compiled HTTP load generator, beside a bare endpoint and the
in-process floor, in one run.

    apt-get install wrk                      # Debian's wrk (C, epoll); the benchmark drives it
    python tools/bench_serving.py            # ~3 minutes on 2 cores
    python tools/bench_serving.py --quick    # one model, shorter runs

For the guide's MNIST MLP (examples/mnist_mlp.py) and toy ResNet (tools/bench_layers.py), it
measures with `wrk -c C --latency` against 127.0.0.1 only, each run bounded by `--seconds`:

- `bare`: a few lines of starlette + uvicorn + orjson around the same ONNX Runtime session, no
  validation, no batching, inference on the event loop (the reference of issue 14);
- `serve`: `irtool serve` (JSON and binary bodies), and `serve+batch` (`--max-batch-size 64`);
- `in-process`: `Session.run` on one row, the floor under any HTTP server.

It prints p50/p99 latency and requests per second per concurrency (1, 8, 64) and the ratios the
issue sets targets for. Servers and wrk run as subprocesses on this machine, so on 2 cores the
load generator takes one core from the server: compare rows of one run, not across machines.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_layers import toy_resnet  # noqa: E402

from irtool.loading import load_model  # noqa: E402
from irtool.runtime import Session  # noqa: E402
from irtool.runtime.benchmark import benchmark  # noqa: E402

BARE = textwrap.dedent(
    """
    import sys
    import numpy as np, onnxruntime as ort, orjson, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]

    async def infer(request):
        body = orjson.loads(await request.body())
        tensor = body["inputs"][0]
        x = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        results = session.run(None, {name: x})
        return Response(orjson.dumps({"outputs": [
            {"name": n, "datatype": "FP32", "shape": list(r.shape), "data": r.ravel()}
            for n, r in zip(outputs, results)]}, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json")

    app = Starlette(routes=[Route("/v2/models/{model}/infer", infer, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error", access_log=False)
    """
)

LUA = """
wrk.method = "POST"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "{content_type}"
{extra}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def start(command, port):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wait_port(port, process)
    return process


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def bodies(folder: Path, name: str, x: np.ndarray) -> dict:
    """JSON and binary request bodies for one row ``x`` as wrk scripts."""
    json_body = orjson.dumps(
        {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel()}]},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    header = orjson.dumps(
        {
            "inputs": [
                {"name": name, "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    scripts = {}
    for kind, body, content_type, extra in [
        ("json", json_body, "application/json", ""),
        (
            "binary",
            header + x.tobytes(),
            "application/octet-stream",
            f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"',
        ),
    ]:
        path = folder / f"{kind}.body"
        path.write_bytes(body)
        script = folder / f"{kind}.lua"
        script.write_text(LUA.format(body=path, content_type=content_type, extra=extra))
        scripts[kind] = script
    return scripts


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict:
    threads = 1 if connections < 8 else 2
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{round(seconds)}s",
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
    if "Non-2xx" in out:
        raise RuntimeError(f"the server answered errors:\n{out}")

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"p50": latency(50), "p99": latency(99), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each wrk run")
    parser.add_argument("--quick", action="store_true", help="the MLP only, 2 s runs")
    parser.add_argument("--concurrency", default="1,8,64")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench_serving: wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    seconds = 2.0 if args.quick else args.seconds
    levels = [int(c) for c in args.concurrency.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    models = {"mnist_mlp": load_model(ROOT / "examples" / "mnist_mlp.py")}
    if not args.quick:
        models["toy_resnet"] = toy_resnet()
    (folder / "bare.py").write_text(BARE)
    rows = []
    for name, model in models.items():
        onnx_path = folder / f"{name}.onnx"
        onnx_path.write_bytes(model.to_onnx().SerializeToString())
        session = Session(str(onnx_path))
        info = session.inputs[0]
        x = np.random.default_rng(0).random((1, *info.shape[1:]), dtype=np.float32)
        floor = benchmark(
            lambda s=session, feeds={info.name: x}: s.run(feeds),
            runs=2000 if name == "mnist_mlp" else 300,
            batch_size=1,
        )
        rows.append((name, "in-process", "-", 1, floor.p50_ms, floor.p99_ms, floor.throughput))
        scripts = bodies(folder, info.name, x)
        servers = {
            "bare": [sys.executable, str(folder / "bare.py"), str(onnx_path)],
            "serve": [sys.executable, "-m", "irtool", "serve", f"{name}={onnx_path}"],
            "serve+batch": [
                sys.executable, "-m", "irtool", "serve", f"{name}={onnx_path}", "--max-batch-size", "64",
            ],
        }  # fmt: skip
        for server, command in servers.items():
            port = free_port()
            process = start([*command, str(port)] if server == "bare" else [*command, "--port", str(port)], port)
            try:
                url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
                for kind in ["json"] if server == "bare" else ["json", "binary"]:
                    wrk(url, scripts[kind], 1, 1)  # warm-up
                    for c in levels:
                        r = wrk(url, scripts[kind], c, seconds)
                        rows.append((name, server, kind, c, r["p50"], r["p99"], r["rps"]))
                        print(
                            f"{name:<11} {server:<12} {kind:<7} c={c:<3} p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  {r['rps']:,.0f} req/s",
                            flush=True,
                        )
            finally:
                stop(process)
    print()
    print("| model | server | body | concurrency | p50 ms | p99 ms | req/s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} | {row[4]:.3f} | {row[5]:.3f} | {row[6]:,.0f} |")
    print()

    def pick(model, server, kind, c):
        return next(r for r in rows if r[:4] == (model, server, kind, c))

    for model in models:
        if 1 in levels:
            bare, serve = pick(model, "bare", "json", 1), pick(model, "serve", "json", 1)
            print(
                f"{model}: serve adds {serve[4] - bare[4]:+.3f} ms to the bare endpoint's p50 at concurrency 1 (JSON)"
            )
            floor = pick(model, "in-process", "-", 1)
            print(
                f"{model}: serve p50 over in-process Session.run: {pick(model, 'serve', 'binary', 1)[4] - floor[4]:+.3f} ms (binary)"
            )
        top = max(levels)
        bare, serve = pick(model, "bare", "json", top), pick(model, "serve", "json", top)
        batch = pick(model, "serve+batch", "json", top)
        print(f"{model}: serve / bare throughput at concurrency {top}: {serve[6] / bare[6]:.2f}x (JSON)")
        print(f"{model}: batching / no batching throughput at concurrency {top}: {batch[6] / serve[6]:.2f}x (JSON)")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
