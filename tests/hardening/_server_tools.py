"""What the server hardening tests share: the served models, a real uvicorn server with
``irtool.serving.server``'s own configuration (short limits), and a raw-socket HTTP client
that can send what no well-behaved client would. Import it after ``pytest.importorskip("uvicorn")``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import orjson
import uvicorn
from onnx import TensorProto, helper

from irtool.runtime import Session
from irtool.serving.app import ServedModel, create_app
from irtool.serving.server import uvicorn_config

from ..serving.conftest import free_port, mlp

#: Limits short enough that the slow-client cases finish in a second or two.
HEADER_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 16 * 1024
MAX_REQUEST_BYTES = 2**20


def add_model() -> onnx.ModelProto:
    """``x: float32[batch, n] + y: float32[batch, m]``: the declared shapes accept any ``n`` and
    ``m`` (and ONNX Runtime's warm-up, which gives every symbolic dim one size, runs), but ONNX
    Runtime fails at run time when ``n != m`` and neither is 1: a shape the graph cannot take."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["sum"])],
        "add",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "m"]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", "k"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def add_request(n: int, m: int) -> bytes:
    """A request for ``add_model`` with one row of ``n`` and one of ``m`` values."""
    return orjson.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [1, n], "datatype": "FP32", "data": list(range(n))},
                {"name": "y", "shape": [1, m], "datatype": "FP32", "data": list(range(m))},
            ]
        }
    )


def served_models() -> list:
    """'mlp' (784 -> 10, batching), 'plain' (the same, no batching) and 'add' (fails inside ONNX Runtime)."""
    data = mlp().to_onnx().SerializeToString()
    return [
        ServedModel("mlp", [Session(data)], max_batch_size=8, max_queue_delay_us=500),
        ServedModel("plain", [Session(data)]),
        ServedModel("add", [Session(add_model().SerializeToString())]),
    ]


class ThreadServer:
    """``with ThreadServer(models) as port:`` irtool's app on uvicorn, configured as ``irtool serve``
    configures it but with the short limits above, in a thread of this process."""

    def __init__(self, models, **limits):
        app = create_app(models, max_request_bytes=MAX_REQUEST_BYTES, read_timeout_s=READ_TIMEOUT_S)
        self.port = free_port()
        limits = {"header_timeout_s": HEADER_TIMEOUT_S, "max_header_bytes": MAX_HEADER_BYTES, **limits}
        self.server = uvicorn.Server(uvicorn_config(app, port=self.port, log_level="error", **limits))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start within 20 s")
            time.sleep(0.01)
        return self.port

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    """An HTTP/1.1 request with ``Connection: close`` and a Content-Length (unless ``headers`` set one)."""
    headers = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    if not any(k.lower() in ("content-length", "transfer-encoding") for k in headers) and (body or method == "POST"):
        headers["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


def read_response(source) -> tuple[int | None, dict, bytes]:
    """``(status, headers, body)`` of one response read from ``source``, a socket or, for
    pipelined responses, one buffered ``sock.makefile("rb")`` kept across calls (``None`` status:
    the server closed without answering). Reads by Content-Length, so keep-alive works."""
    stream = source.makefile("rb") if isinstance(source, socket.socket) else source
    try:
        status_line = stream.readline()
    except ConnectionResetError:
        return None, {}, b""
    if not status_line:
        return None, {}, b""
    status = int(status_line.split()[1])
    headers = {}
    for line in iter(stream.readline, b"\r\n"):
        if not line:
            break
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", 0)))


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[int | None, dict, bytes]:
    """Send ``data`` on a fresh connection and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def pixels_request(rows: int = 1, seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).random((rows, 784), dtype=np.float32)
    return orjson.dumps(
        {"inputs": [{"name": "pixels", "shape": [rows, 784], "datatype": "FP32", "data": x.ravel().tolist()}]}
    )


class ServeProcess:
    """``irtool serve ARGS`` as a user runs it, in a subprocess on a free port (the real CLI, its
    uvicorn configuration and signal handling); ``port`` once it prints that it serves."""

    def __init__(self, *args, cwd):
        self.port = free_port()
        command = [sys.executable, "-m", "irtool", "serve", *map(str, args), "--port", str(self.port)]
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(line.rstrip() for line in self.process.stdout), daemon=True
        )
        self._reader.start()

    def __enter__(self) -> ServeProcess:
        deadline = time.monotonic() + 60
        while not any("serving on" in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise AssertionError(f"irtool serve did not start: {self.lines}")
            time.sleep(0.05)
        return self

    def rss_bytes(self) -> int:
        """The server's resident memory, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
