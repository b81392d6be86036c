"""A real server on a free loopback port: uvicorn running irtool's ASGI app in a thread."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

uvicorn = pytest.importorskip("uvicorn")

import irtool  # noqa: E402
from irtool.runtime import Session  # noqa: E402
from irtool.serving.app import ServedModel, create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """``with RunningServer(app) as url:`` serves ``app`` until the block ends (bounded waits)."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start within 20 s")
            time.sleep(0.01)
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)


def mlp(name="mlp"):
    """The MNIST-style MLP: 784 -> 32 relu -> 10 softmax, fixed weights."""
    inputs = irtool.Input((784,), name="pixels")
    hidden = irtool.layers.Dense(32, activation="relu", name="hidden")(inputs)
    outputs = irtool.layers.Dense(10, activation="softmax", name="probs")(hidden)
    logits = irtool.layers.Dense(3, name="aux")(hidden)
    model = irtool.Model(inputs, [outputs, logits], name=name)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.1, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="session")
def mlp_onnx():
    return mlp().to_onnx()


@pytest.fixture(scope="session")
def mlp_session(mlp_onnx):
    return Session(mlp_onnx.SerializeToString())


def serve(models, **options):
    return RunningServer(create_app(models, **options))


@pytest.fixture(scope="module")
def server(mlp_onnx):
    """The MLP as model 'mlp' (versions 1 and 2, batching up to 64 rows) and 'plain' (no batching).
    Version 2 hands every call to its two worker threads (``inline_max_us=0``); the others run
    calls as cheap as this MLP's on the event loop."""
    data = mlp_onnx.SerializeToString()
    models = [
        ServedModel("mlp", [Session(data)], version="1", max_batch_size=64, max_queue_delay_us=2000),
        ServedModel(
            "mlp",
            [Session(data), Session(data)],
            version="2",
            max_batch_size=64,
            max_queue_delay_us=2000,
            inline_max_us=0,
        ),
        ServedModel("plain", [Session(data)]),
    ]
    with serve(models, max_request_bytes=2**20) as url:
        yield url
