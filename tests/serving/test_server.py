"""`irtool serve`'s app on a real socket, driven by the official tritonclient and by raw HTTP."""

from __future__ import annotations

import http.client
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from onnx import TensorProto

from irtool.runtime import Session
from irtool.serving.app import ServedModel, create_app

from ..harness import one_node_onnx
from .conftest import RunningServer, serve

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

RNG = np.random.default_rng(1)


def pixels(rows):
    return RNG.random((rows, 784), dtype=np.float32)


def infer(client, model, x, binary=True, outputs=None, version=""):
    tensor = httpclient.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    requested = None if outputs is None else [httpclient.InferRequestedOutput(n, binary_data=binary) for n in outputs]
    return client.infer(model, [tensor], outputs=requested, model_version=version, request_id="req-9")


def test_health_and_metadata(server):
    client = httpclient.InferenceServerClient(server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and client.is_model_ready("mlp", "1") and not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("plain")
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]
    assert [o["name"] for o in meta["outputs"]] == ["probs", "aux"] and meta["outputs"][0]["shape"] == [-1, 10]
    assert client.get_model_metadata("mlp", "2")["versions"] == ["2"]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("model", ["mlp", "plain"])
def test_inference_equals_the_session(server, mlp_session, binary, model):
    client = httpclient.InferenceServerClient(server)
    x = pixels(5)
    result = infer(client, model, x, binary=binary)
    want = mlp_session.run({"pixels": x})
    assert result.get_response()["id"] == "req-9" and result.get_response()["model_name"] == model
    for name in ("probs", "aux"):
        np.testing.assert_allclose(result.as_numpy(name), want[name], rtol=1e-6, atol=1e-7)


def test_output_subset_and_versions(server, mlp_session):
    client = httpclient.InferenceServerClient(server)
    x = pixels(2)
    result = infer(client, "mlp", x, outputs=["aux"], version="1")
    assert [o["name"] for o in result.get_response()["outputs"]] == ["aux"]
    np.testing.assert_allclose(result.as_numpy("aux"), mlp_session.run({"pixels": x})["aux"], rtol=1e-6)
    assert result.get_response()["model_version"] == "1"


def raw(url, method, path, body=b"", headers=None):
    host, port = url.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def infer_json(url, inputs, model="plain", **headers):
    return raw(url, "POST", f"/v2/models/{model}/infer", json.dumps({"inputs": inputs}).encode(), headers)


GOOD = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/v2/models/plain/infer", b"{nope", 400, "not valid JSON"),
        ("/v2/models/plain/infer", b'{"inputs": []}', 400, "non-empty 'inputs'"),
        (
            "/v2/models/plain/infer",
            json.dumps({"inputs": [{**GOOD, "name": "image"}]}).encode(),
            400,
            "unknown input 'image'",
        ),
        (
            "/v2/models/plain/infer",
            json.dumps({"inputs": [{**GOOD, "datatype": "FP64"}]}).encode(),
            400,
            "datatype FP64, the model expects FP32",
        ),
        (
            "/v2/models/plain/infer",
            json.dumps({"inputs": [{**GOOD, "shape": [1, 783]}]}).encode(),
            400,
            "'data' has 784 elements but shape [1, 783]",
        ),
        (
            "/v2/models/plain/infer",
            json.dumps({"inputs": [{**GOOD, "shape": [2, 392]}]}).encode(),
            400,
            "input 'pixels': shape [2, 392], the model expects [-1, 784]",
        ),
        (
            "/v2/models/plain/infer",
            json.dumps({"inputs": [GOOD], "outputs": [{"name": "x"}]}).encode(),
            400,
            "unknown output 'x'",
        ),
        ("/v2/models/nope/infer", json.dumps({"inputs": [GOOD]}).encode(), 404, "unknown model 'nope'"),
        ("/v2/models/mlp/versions/7/infer", json.dumps({"inputs": [GOOD]}).encode(), 404, "has no version '7'"),
        (
            "/v2/models/plain/infer",
            json.dumps({"inputs": [{**GOOD, "shape": [1400, 784], "data": [0.0] * 1400 * 784}]}).encode(),
            413,
            "--max-request-bytes",
        ),
        ("/v2/nothing/here", b"", 404, "Not Found"),
    ],
)
def test_bad_requests_get_an_error_and_the_server_keeps_serving(server, path, body, status, message):
    method = "GET" if path == "/v2/nothing/here" else "POST"
    code, payload = raw(server, method, path, body)
    assert code == status, payload
    assert message in json.loads(payload)["error"]
    assert infer_json(server, [GOOD])[0] == 200


def test_too_many_rows_for_the_batcher(server):
    code, payload = infer_json(server, [{**GOOD, "shape": [65, 784], "data": [0.0] * 65 * 784}], model="mlp")
    assert code == 400 and "--max-batch-size" in json.loads(payload)["error"]


def test_concurrent_single_rows_are_batched_exactly(server, mlp_session):
    x = pixels(240)
    want = mlp_session.run({"pixels": x})

    def one(i):
        client = httpclient.InferenceServerClient(server)
        return i, infer(client, "mlp", x[i : i + 1])

    with ThreadPoolExecutor(48) as pool:
        results = dict(pool.map(one, range(len(x))))
    for i, result in results.items():
        np.testing.assert_allclose(result.as_numpy("probs"), want["probs"][i : i + 1], rtol=1e-5, atol=1e-7)
    status, text = raw(server, "GET", "/metrics")
    metrics = text.decode()
    count = float(re.search(r'irtool_batch_size_count\{model="mlp"\} (\S+)', metrics).group(1))
    total = float(re.search(r'irtool_batch_size_sum\{model="mlp"\} (\S+)', metrics).group(1))
    assert total >= 240 and count < total, "no batch of more than one row formed"
    assert 'irtool_requests_total{model="mlp",outcome="success"}' in metrics


def test_bearer_token(mlp_onnx):
    with serve([ServedModel("m", [Session(mlp_onnx.SerializeToString())])], auth_token="s3cret") as url:
        assert raw(url, "GET", "/v2/health/ready")[0] == 200
        code, payload = raw(url, "GET", "/v2/models/m")
        assert code == 401 and "bearer token" in json.loads(payload)["error"]
        assert raw(url, "GET", "/v2/models/m", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert raw(url, "GET", "/v2/models/m", headers={"Authorization": "Bearer s3cret"})[0] == 200
        client = httpclient.InferenceServerClient(url)
        with pytest.raises(InferenceServerException):
            client.get_model_metadata("m")
        client = httpclient.InferenceServerClient(url)
        meta = client.get_model_metadata("m", headers={"Authorization": "Bearer s3cret"})
        assert meta["name"] == "m"


def test_structured_access_log(mlp_onnx):
    log = io.StringIO()
    with serve([ServedModel("m", [Session(mlp_onnx.SerializeToString())])], access_log=log) as url:
        assert raw(url, "GET", "/v2/models/m")[0] == 200
        assert raw(url, "GET", "/v2/models/zz")[0] == 404
    entries = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/v2/models/m", 200),
        ("GET", "/v2/models/zz", 404),
    ]
    assert all(e["client"].startswith("127.0.0.1:") and e["ms"] >= 0 and e["time"].endswith("+00:00") for e in entries)


def test_create_app_is_public(mlp_onnx):
    import irtool.serving

    app = irtool.serving.create_app([ServedModel("m", [Session(mlp_onnx.SerializeToString())])])
    with RunningServer(app) as url:
        assert httpclient.InferenceServerClient(url).get_model_metadata("m")["name"] == "m"


def test_one_app_served_by_one_event_loop_after_another(mlp_onnx, mlp_session):
    """A stopped server's app served again (a new event loop; the lifespan closed its batchers and
    worker pools): batched and pooled requests are answered as before. Before, the batcher's task
    and queues stayed bound to the first loop and the second server never answered."""
    data = mlp_onnx.SerializeToString()
    model = ServedModel("m", [Session(data), Session(data)], max_batch_size=8, max_queue_delay_us=2000, inline_max_us=0)
    app = create_app([model], read_timeout_s=5)
    x = pixels(6)
    want = mlp_session.run({"pixels": x})["probs"]
    for _ in range(2):
        with RunningServer(app) as url:

            def one(i, url=url):
                return infer(httpclient.InferenceServerClient(url, network_timeout=20), "m", x[i : i + 1])

            with ThreadPoolExecutor(6) as pool:
                got = np.concatenate([r.as_numpy("probs") for r in pool.map(one, range(6))])
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_text_reaches_a_string_model_unchanged():
    """BYTES from tritonclient (binary and JSON) and from raw JSON: ONNX Runtime would read a bytes
    element as its repr, ``"b'hello'"``; the session decodes it as UTF-8, as Triton's users expect."""
    proto = one_node_onnx("Identity", TensorProto.STRING)
    app = create_app([ServedModel("echo", [Session(proto.SerializeToString())])])
    words = ["hello", "wörld", ""]
    with RunningServer(app) as url:
        client = httpclient.InferenceServerClient(url)
        for binary in (True, False):
            tensor = httpclient.InferInput("x", [3], "BYTES")
            tensor.set_data_from_numpy(np.array([w.encode() for w in words], dtype=object), binary_data=binary)
            got = client.infer("echo", [tensor], outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)])
            assert [v.decode() if isinstance(v, bytes) else v for v in got.as_numpy("y")] == words, binary
        body = json.dumps({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [3], "data": words}]}).encode()
        status, answer = raw(url, "POST", "/v2/models/echo/infer", body)
        assert status == 200 and json.loads(answer)["outputs"][0]["data"] == words
        header = b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":5}}]}'
        status, answer = raw(
            url,
            "POST",
            "/v2/models/echo/infer",
            header + b"\x01\0\0\0\xff",
            {"Inference-Header-Content-Length": str(len(header))},
        )
        assert status == 400 and "not UTF-8" in json.loads(answer)["error"]
