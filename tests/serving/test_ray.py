"""`irtool.serving.ray` on a real local Ray cluster: 2 replicas behind Ray Serve's HTTP proxy,
driven by the official tritonclient, as `irtool serve` is in test_server.py."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
httpclient = pytest.importorskip("tritonclient.http")

from irtool.runtime import Session  # noqa: E402
from irtool.serving.ray import REPLICA_HEADER, deployment  # noqa: E402

from .conftest import free_port, mlp  # noqa: E402

RNG = np.random.default_rng(3)


def pixels(rows):
    return RNG.random((rows, 784), dtype=np.float32)


def raw(url, method, path, body=b"", headers=None):
    host, port = url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def model():
    return mlp()


@pytest.fixture(scope="module")
def reference(model):
    return Session(model.to_onnx().SerializeToString())


@pytest.fixture(scope="module")
def proxy(cluster, model):
    """The MLP as 'mlp' (batching up to 64 rows) in 2 replicas of half a CPU each."""
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = deployment(
        model,
        num_replicas=2,
        max_batch_size=64,
        batch_wait_timeout_s=0.002,
        ray_actor_options={"num_cpus": 0.5},
    )
    serve.run(app, name="irtool", route_prefix="/")
    yield f"127.0.0.1:{port}"
    serve.delete("irtool")


def infer(client, x, binary=True, outputs=None):
    tensor = httpclient.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    requested = None if outputs is None else [httpclient.InferRequestedOutput(n, binary_data=binary) for n in outputs]
    return client.infer("mlp", [tensor], outputs=requested, request_id="r1")


def test_health_and_metadata_through_the_proxy(proxy):
    client = httpclient.InferenceServerClient(proxy)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mlp")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("mlp")
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]
    assert [o["name"] for o in meta["outputs"]] == ["probs", "aux"]


@pytest.mark.parametrize("binary", [False, True])
def test_inference_equals_the_session(proxy, reference, binary):
    client = httpclient.InferenceServerClient(proxy)
    x = pixels(5)
    result = infer(client, x, binary=binary)
    want = reference.run({"pixels": x})
    assert result.get_response()["id"] == "r1" and result.get_response()["model_name"] == "mlp"
    for name in ("probs", "aux"):
        np.testing.assert_allclose(result.as_numpy(name), want[name], rtol=1e-6, atol=1e-7)
    subset = infer(client, x, outputs=["aux"])
    assert [o["name"] for o in subset.get_response()["outputs"]] == ["aux"]


def test_errors_are_the_same_as_irtool_serve(proxy):
    good = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}
    status, body, _ = raw(proxy, "POST", "/v2/models/mlp/infer", json.dumps({"inputs": [{**good, "shape": [1, 783]}]}))
    assert status == 400 and "'data' has 784 elements but shape [1, 783]" in json.loads(body)["error"]
    status, body, _ = raw(proxy, "POST", "/v2/models/nope/infer", json.dumps({"inputs": [good]}))
    assert status == 404 and "unknown model 'nope'" in json.loads(body)["error"]
    too_many = {**good, "shape": [65, 784], "data": [0.0] * 65 * 784}
    status, body, _ = raw(proxy, "POST", "/v2/models/mlp/infer", json.dumps({"inputs": [too_many]}))
    assert status == 400 and "max batch size is 64" in json.loads(body)["error"]


def test_concurrent_requests_are_batched_and_spread_over_both_replicas(proxy, reference):
    x = pixels(160)
    want = reference.run({"pixels": x})

    def one(i):
        tensor = json.dumps(
            {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": x[i].tolist()}]}
        )
        status, body, headers = raw(proxy, "POST", "/v2/models/mlp/infer", tensor)
        assert status == 200, body
        outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
        return i, outputs, headers[REPLICA_HEADER]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(len(x))))
    for i, outputs, _ in results:
        np.testing.assert_allclose(outputs["probs"], want["probs"][i], rtol=1e-5, atol=1e-7)
    replicas = Counter(replica for _, _, replica in results)
    assert len(replicas) == 2 and min(replicas.values()) >= 16, replicas
    assert all(r.startswith("SERVE_REPLICA::irtool#irtool#") for r in replicas)
    # Each replica's /metrics counts its own batches: some held more than one row.
    batched = 0
    for _ in range(20):
        _, text, headers = raw(proxy, "GET", "/metrics")
        count = float(re.search(r'irtool_batch_size_count\{model="mlp"\} (\S+)', text.decode()).group(1))
        total = float(re.search(r'irtool_batch_size_sum\{model="mlp"\} (\S+)', text.decode()).group(1))
        batched = max(batched, total / count)
    assert batched > 1, "no replica formed a batch of more than one row"


def test_killing_a_replica_loses_no_retried_request(proxy, reference):
    """Clients retry failed requests; one replica is killed mid-run; every request is answered right."""
    x = pixels(300)
    want = reference.run({"pixels": x})["probs"]
    killed, answered = [], []

    def one(i):
        client = httpclient.InferenceServerClient(proxy, network_timeout=30)
        for attempt in range(40):
            try:
                probs = infer(client, x[i : i + 1]).as_numpy("probs")
                answered.append(i)
                return i, probs
            except Exception:  # noqa: BLE001 - a request lost with the dying replica, retried
                time.sleep(0.1 * min(attempt + 1, 5))
        raise AssertionError(f"request {i} failed 40 times")

    def kill_one():
        while len(answered) < 40:
            time.sleep(0.01)
        name = raw(proxy, "GET", "/v2/health/live")[2][REPLICA_HEADER]
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        killed.append((name, len(answered)))

    killer = threading.Thread(target=kill_one)
    killer.start()
    with ThreadPoolExecutor(16) as pool:
        results = dict(pool.map(one, range(len(x))))
    killer.join(timeout=30)
    assert killed and killed[0][1] < len(x), f"no replica was killed mid-run: {killed}"
    assert sorted(results) == list(range(len(x)))
    np.testing.assert_allclose(np.concatenate([results[i] for i in range(len(x))]), want, rtol=1e-5, atol=1e-7)
    # Ray Serve replaces the killed replica: two replicas answer again, the killed one not among them.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replicas = {raw(proxy, "GET", "/v2/health/live")[2][REPLICA_HEADER] for _ in range(20)}
        if len(replicas) == 2 and killed[0][0] not in replicas:
            break
        time.sleep(0.5)
    assert len(replicas) == 2 and killed[0][0] not in replicas, replicas


def test_the_cli_serves_on_an_existing_cluster(cluster, proxy, tmp_path):
    """`irtool serve --ray --address` in a subprocess, joining this module's cluster."""
    serve.delete("irtool")
    serve.shutdown()
    onnx_path = tmp_path / "mlp.onnx"
    onnx_path.write_bytes(mlp().to_onnx().SerializeToString())
    port = free_port()
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "irtool", "serve", f"m={onnx_path}", "--ray", "--replicas", "1"]
    command += ["--address", address, "--port", str(port), "--max-batch-size", "8"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "irtool: serving on" in line:
                break
        assert any("serving on" in line for line in lines), "".join(lines)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        x = pixels(3)
        tensor = httpclient.InferInput("pixels", [3, 784], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("m", [tensor])
        np.testing.assert_allclose(result.as_numpy("probs"), mlp().predict(x, verbose=0)[0], rtol=1e-5, atol=1e-6)
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert "irtool: stopped" in output
