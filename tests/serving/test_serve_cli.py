"""`irtool serve` as a user runs it: a subprocess on a free port, the models from real files, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from irtool.cli import main

from .conftest import free_port, mlp

httpclient = pytest.importorskip("tritonclient.http")
ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """``irtool serve ARGS --port P`` in a subprocess; ``url`` once it prints that it serves."""

    def __init__(self, *args, env=None):
        self.port = free_port()
        command = [sys.executable, "-m", "irtool", "serve", *map(str, args), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_serving(self, timeout=60) -> str:
        deadline = time.monotonic() + timeout
        while not any("serving on" in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"irtool serve did not start: {self.lines}")
            time.sleep(0.05)
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout=30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        return code


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    model = mlp()
    onnx_path = folder / "mlp.onnx"
    onnx_path.write_bytes(model.to_onnx().SerializeToString())
    model.save(str(folder / "mlp.keras"))
    repo = folder / "repo"
    for version in ("1", "3"):
        (repo / "mnist" / version).mkdir(parents=True)
        (repo / "mnist" / version / "model.onnx").write_bytes(onnx_path.read_bytes())
    return folder


def infer(url, model, x, version=""):
    client = httpclient.InferenceServerClient(url)
    tensor = httpclient.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer(model, [tensor], model_version=version)


def test_serve_files_and_a_repository_then_stop_on_sigterm(files, mlp_session):
    server = ServeProcess(
        f"net={files / 'mlp.onnx'}", files / "mlp.keras", files / "repo", "--max-batch-size", "8", "--instances", "2"
    )
    url = server.wait_serving()
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    want = mlp_session.run({"pixels": x})["probs"]
    for model, version in [("net", ""), ("mlp", ""), ("mnist", "1"), ("mnist", "3"), ("mnist", "")]:
        np.testing.assert_allclose(infer(url, model, x, version).as_numpy("probs"), want, rtol=1e-5, atol=1e-7)
    client = httpclient.InferenceServerClient(url)
    assert client.get_model_metadata("mnist")["versions"] == ["3"]
    assert server.stop() == 0
    assert any(
        "model 'net' version 1: 2 instance(s) on CPUExecutionProvider, batching up to 8 rows" in line
        for line in server.lines
    )
    assert server.lines[-1] == "irtool: stopped", server.lines


def test_sigterm_answers_requests_in_flight(files):
    """A request waiting 2 s for its batch to fill is in flight when SIGTERM comes; it is answered."""
    server = ServeProcess(files / "mlp.onnx", "--max-batch-size", "64", "--max-queue-delay-us", "2000000")
    url = server.wait_serving()
    x = np.random.default_rng(1).random((1, 784), dtype=np.float32)
    results = []
    worker = threading.Thread(target=lambda: results.append(infer(url, "mlp", x).as_numpy("probs").shape))
    worker.start()
    deadline = time.monotonic() + 20
    while (
        "irtool_requests_in_flight 1.0"
        not in urllib.request.urlopen(f"http://{url}/metrics", timeout=5).read().decode()
    ):
        assert time.monotonic() < deadline, "the request never arrived"
        time.sleep(0.02)
    assert server.stop() == 0
    worker.join(timeout=30)
    assert results == [(1, 10)]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["nothing.onnx"], 1, "nothing.onnx: no such file or directory"),
        (["--port", "70000", "m.onnx"], 2, "--port: expected 0-65535"),
        (["--providers", "gpu-please", "m.onnx"], 2, "--providers"),
        (["--auth-token-env", "IRTOOL_TEST_UNSET_TOKEN", "m.onnx"], 2, "IRTOOL_TEST_UNSET_TOKEN is not set"),
        (["--max-batch-size", "0", "m.onnx"], 2, "--max-batch-size"),
    ],
)
def test_bad_arguments_are_one_line(args, code, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IRTOOL_TEST_UNSET_TOKEN", raising=False)
    assert main(["serve", *args]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irtool: error:") and message in err[0], err


def test_a_port_in_use_is_one_line(files, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(files / "mlp.onnx"), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"irtool: error: cannot listen on 127.0.0.1:{port}") and "\n" not in err


def test_auth_token_from_the_environment(files):
    server = ServeProcess(files / "mlp.onnx", "--auth-token-env", "SERVE_TOKEN", env={"SERVE_TOKEN": "tok"})
    url = server.wait_serving()
    client = httpclient.InferenceServerClient(url)
    assert client.is_server_live()
    assert client.get_model_metadata("mlp", headers={"Authorization": "Bearer tok"})["name"] == "mlp"
    with pytest.raises(Exception, match="bearer token"):
        client.get_model_metadata("mlp")
    assert server.stop() == 0


@pytest.mark.parametrize("flag", [["--replicas", "2"], ["--address", "auto"]])
def test_ray_options_need_ray(flag, capsys):
    assert main(["serve", "m.onnx", *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"irtool: error: {flag[0]} needs --ray"


def test_serve_ray_without_the_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr("irtool.serving.missing_ray", lambda: ["ray", "ray.serve"])
    assert main(["serve", "m.onnx", "--ray"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "irtool: error: irtool serve --ray needs ray, ray.serve (the ray extra): pip install 'irtool[ray]'"


def test_a_model_py_is_served_with_a_note_on_its_fresh_weights(tmp_path):
    """As `export` and `run` do, `serve` says once that a model.py's weights are its initializers'
    draws; its startup line says which calls run on the event loop."""
    server = ServeProcess(ROOT / "examples" / "mnist_mlp.py")
    server.wait_serving()
    assert server.stop() == 0
    notes = [line for line in server.lines if "freshly initialised weights" in line]
    assert len(notes) == 1 and "pass --weights FILE" in notes[0], server.lines
    assert any("on the event loop" in line for line in server.lines), server.lines
