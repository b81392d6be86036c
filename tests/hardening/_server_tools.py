"""What the server hardening tests share: the served models, a real uvicorn server with
``irtool.serving.server``'s own configuration (short limits), and a raw-socket HTTP client
that can send what no well-behaved client would. Import it after ``pytest.importorskip("uvicorn")``."""

from __future__ import annotations

import socket
import threading
import time

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


def read_response(sock: socket.socket) -> tuple[int | None, dict, bytes]:
    """``(status, headers, body)`` of one response read from ``sock`` (``None`` status: the server
    closed without answering). Reads by Content-Length, so keep-alive connections work."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, {}, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


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
