"""The server rows of the hardening matrix: every malformed request a client can send, as data,
against irtool's app on a real uvicorn (``irtool.serving.server``'s configuration), plus slow
and oversized headers and bodies, thousands of connections, SIGTERM and a model that fails
inside ONNX Runtime. Each case: a 4xx with ``{"error": ...}`` naming what is wrong (never a 5xx
for a client's mistake), and the server answers a good request afterwards."""

from __future__ import annotations

import json
import signal
import socket
import time

import orjson
import pytest

pytest.importorskip("uvicorn")

from ..serving.conftest import mlp  # noqa: E402
from ._server_tools import (  # noqa: E402
    HEADER_TIMEOUT_S,
    MAX_HEADER_BYTES,
    READ_TIMEOUT_S,
    ServeProcess,
    ThreadServer,
    add_model,
    add_request,
    exchange,
    pixels_request,
    read_response,
    request_bytes,
    served_models,
)

INFER = "/v2/models/plain/infer"
GOOD = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}


def body(*inputs, **message) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **message})


def binary(entries: list, tail: bytes, header_length=None) -> tuple[bytes, dict]:
    head = orjson.dumps({"inputs": entries})
    length = len(head) if header_length is None else header_length
    return head + tail, {"Inference-Header-Content-Length": str(length)}


def nested(depth: int, leaf) -> bytes:
    return b"[" * depth + leaf + b"]" * depth


def case(name, status, message, payload=b"", headers=None, *, path=INFER, method="POST"):
    return pytest.param(method, path, payload, headers or {}, status, message, id=name)


_BIN = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 784 * 4}}

CASES = [
    # -- the body is not a v2 request --
    case("empty body", 400, "not valid JSON"),
    case("not JSON", 400, "not valid JSON", b"{nope"),
    case("JSON array", 400, "must be a JSON object, received list", b"[1, 2]"),
    case("JSON string", 400, "must be a JSON object, received str", b'"inputs"'),
    case("JSON null", 400, "must be a JSON object, received NoneType", b"null"),
    case("NaN literal", 400, "not valid JSON", b'{"inputs": NaN}'),
    case("trailing garbage", 400, "not valid JSON", body(GOOD) + b"}"),
    case("invalid UTF-8", 400, "not valid JSON", b'{"id": "\xff\xfe"}'),
    case("JSON nested 5000 deep", 400, "not valid JSON", b'{"inputs": ' + nested(5000, b"1") + b"}"),
    case("no inputs", 400, "non-empty 'inputs'", b"{}"),
    case("empty inputs", 400, "non-empty 'inputs'", body()),
    case("inputs an object", 400, "non-empty 'inputs'", orjson.dumps({"inputs": {"pixels": [1]}})),
    case("input not an object", 400, "each of 'inputs' must be a JSON object", orjson.dumps({"inputs": [1]})),
    case("input without name", 400, "needs a string 'name'", body({k: v for k, v in GOOD.items() if k != "name"})),
    case("input name a number", 400, "needs a string 'name', received 7", body({**GOOD, "name": 7})),
    case("datatype missing", 400, "datatype None is not one of", body({**GOOD, "datatype": None})),
    case("datatype unknown", 400, "datatype 'FP8' is not one of", body({**GOOD, "datatype": "FP8"})),
    case("datatype a list", 400, "datatype [] is not one of", body({**GOOD, "datatype": []})),  # was a 500
    case("datatype an object", 400, "datatype {} is not one of", body({**GOOD, "datatype": {}})),
    case("datatype lower case", 400, "datatype 'fp32' is not one of", body({**GOOD, "datatype": "fp32"})),
    case("shape missing", 400, "'shape' must be a list", body({**GOOD, "shape": None})),
    case("shape negative", 400, "non-negative integers, received [-1, 784]", body({**GOOD, "shape": [-1, 784]})),
    case("shape float", 400, "non-negative integers", body({**GOOD, "shape": [1.0, 784]})),
    case("shape bool", 400, "non-negative integers", body({**GOOD, "shape": [True, 784]})),
    case("shape string", 400, "non-negative integers", body({**GOOD, "shape": "1,784"})),
    case("data missing", 400, "has no 'data'", body({k: v for k, v in GOOD.items() if k != "data"})),
    case("data too short", 400, "'data' has 783 elements but shape [1, 784]", body({**GOOD, "data": [0.5] * 783})),
    case("data strings", 400, "unable to parse 'data' as FP32", body({**GOOD, "data": ["a"] * 784})),
    case("data null", 400, "unable to parse 'data' as FP32", body({**GOOD, "data": None})),
    case("data an object", 400, "unable to parse 'data' as FP32", body({**GOOD, "data": {"a": 1}})),
    case("data booleans", 400, "FP32 data must be numbers", body({**GOOD, "data": [True] * 784})),
    case("data ragged", 400, "unable to parse 'data' as FP32", body({**GOOD, "data": [[0.5] * 783, [0.5]]})),
    case(
        "data nested 1000 deep",
        400,
        "unable to parse 'data'",
        b'{"inputs": [{"name": "pixels", "shape": [1], "datatype": "FP32", "data": ' + nested(1000, b"1") + b"}]}",
    ),
    case(
        "BYTES nested 1000 deep",
        400,
        "unknown input 's'",  # parsed (it was a RecursionError, a 500), then refused by the model
        b'{"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "data": ' + nested(1000, b'"a"') + b"}]}",
    ),
    case(
        "integer over 64 bits",
        400,
        "INT64 data must be integers",
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [123456789012345678901234567890]}]}',
    ),
    case("INT8 out of range", 400, "out of range for INT8", body({**GOOD, "datatype": "INT8", "data": [300] * 784})),
    case("huge declared shape", 400, "'data' has 784 elements", body({**GOOD, "shape": [10**12, 10**12]})),
    case("input given twice", 400, "input 'pixels' is given twice", body(GOOD, GOOD)),
    case("id a number", 400, "'id' must be a string, received 5", body(GOOD, id=5)),
    case("parameters a list", 400, "the request's 'parameters' must be a JSON object", body(GOOD, parameters=[1])),
    case("input parameters a string", 400, "'parameters' must be a JSON object", body({**GOOD, "parameters": "x"})),
    case(
        "shared memory",
        400,
        "shared-memory extension is not supported",
        body({**GOOD, "parameters": {"shared_memory_region": "r"}}),
    ),
    # -- the request does not fit the model --
    case("unknown input", 400, "unknown input 'image'", body({**GOOD, "name": "image"})),
    case("wrong datatype", 400, "datatype FP64, the model expects FP32", body({**GOOD, "datatype": "FP64"})),
    case(
        "integer datatype",
        400,
        "datatype INT32, the model expects FP32",
        body({**GOOD, "datatype": "INT32", "data": [1] * 784}),
    ),
    case(
        "BYTES for floats",
        400,
        "datatype BYTES, the model expects FP32",
        body({**GOOD, "datatype": "BYTES", "data": ["a"] * 784}),
    ),
    case("wrong rank", 400, "shape [784], the model expects [-1, 784]", body({**GOOD, "shape": [784]})),
    case("wrong dim", 400, "shape [2, 392], the model expects [-1, 784]", body({**GOOD, "shape": [2, 392]})),
    case("zero rows", 200, "", body({**GOOD, "shape": [0, 784], "data": []})),
    case("outputs not a list", 400, "'outputs' must be a list", body(GOOD, outputs={"name": "probs"})),
    case("output not an object", 400, "each of 'outputs' must be a JSON object", body(GOOD, outputs=["probs"])),
    case("output without name", 400, "needs a string 'name'", body(GOOD, outputs=[{"id": 1}])),
    case("unknown output", 400, "unknown output 'logits'", body(GOOD, outputs=[{"name": "logits"}])),
    case(
        "classification",
        400,
        "classification extension is not supported",
        body(GOOD, outputs=[{"name": "probs", "parameters": {"classification": 3}}]),
    ),
    # -- the binary tensor extension --
    case(
        "binary length not a number",
        400,
        "must be an integer, received 'abc'",
        *binary([_BIN], b"\0" * 3136, header_length="abc"),
    ),
    case("binary length negative", 400, "is -5 but the body has", *binary([_BIN], b"\0" * 3136, header_length=-5)),
    case("binary length zero", 400, "is 0 but the body has", *binary([_BIN], b"\0" * 3136, header_length=0)),
    case("binary length past the body", 400, "but the body has", *binary([_BIN], b"", header_length=10**6)),
    case("binary data short", 400, "binary_data_size 3136 but 100 bytes", *binary([_BIN], b"\0" * 100)),
    case("binary data unclaimed", 400, "8 bytes of binary data that no input claims", *binary([_BIN], b"\0" * 3144)),
    case(
        "binary size not a number",
        400,
        "binary_data_size '8'",
        *binary([{**_BIN, "parameters": {"binary_data_size": "8"}}], b"\0" * 8),
    ),
    case(
        "binary size wrong for shape",
        400,
        "4 bytes of binary data but shape [1, 784] of FP32 needs 3136",
        *binary([{**_BIN, "parameters": {"binary_data_size": 4}}], b"\0" * 4),
    ),
    case("binary and data", 400, "both 'data' and binary_data_size", *binary([{**_BIN, "data": [0]}], b"\0" * 3136)),
    case(
        "BYTES element cut",
        400,
        "ends inside an element's 4-byte length",
        *binary([{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 2}}], b"\1\0"),
    ),
    case(
        "BYTES element overruns",
        400,
        "runs past the data",
        *binary(
            [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}], b"\xff\0\0\0ab"
        ),
    ),
    # -- routes, methods, sizes --
    case("unknown model", 404, "unknown model 'nope'", body(GOOD), path="/v2/models/nope/infer"),
    case("unknown version", 404, "has no version '7'", body(GOOD), path="/v2/models/plain/versions/7/infer"),
    case("unknown route", 404, "Not Found", path="/v2/nothing/here", method="GET"),
    case("metadata of an unknown model", 404, "unknown model 'nope'", path="/v2/models/nope", method="GET"),
    case("GET on infer", 405, "Method Not Allowed", method="GET"),
    case("DELETE on a model", 405, "Method Not Allowed", path="/v2/models/plain", method="DELETE"),
    case("POST on health", 405, "Method Not Allowed", path="/v2/health/live"),
    case(
        "body over the limit",
        413,
        "over the server's limit of 1048576 bytes",
        body({**GOOD, "shape": [400, 784], "data": [0.5] * 400 * 784}),
    ),
    case("declared length over the limit", 413, "--max-request-bytes", b"{}", headers={"Content-Length": str(2**30)}),
    case(
        "chunked body over the limit",
        413,
        "over the server's limit",
        b"100000\r\n" + b" " * 0x100000 + b"\r\n1\r\n \r\n0\r\n\r\n",
        headers={"Transfer-Encoding": "chunked"},
    ),
    case("bad Content-Length", 400, "not a valid HTTP request", b"{}", headers={"Content-Length": "abc"}),
    case(
        "bad chunk size",
        400,
        "not a valid HTTP request",
        b"zz\r\n{}\r\n0\r\n\r\n",
        headers={"Transfer-Encoding": "chunked"},
    ),
    # -- a model that fails inside ONNX Runtime --
    case(
        "shapes the graph cannot take",
        400,
        "model 'add' could not run this request",
        add_request(4, 3),
        path="/v2/models/add/infer",
    ),
]


@pytest.fixture(scope="module")
def port():
    with ThreadServer(served_models()) as port:
        yield port


def assert_serves(port: int) -> None:
    status, _, payload = exchange(port, request_bytes("POST", INFER, pixels_request()))
    assert status == 200, payload
    assert len(orjson.loads(payload)["outputs"][0]["data"]) == 10


@pytest.mark.parametrize("method, path, payload, headers, status, message", CASES)
def test_malformed_requests(port, method, path, payload, headers, status, message):
    answered, response_headers, answer = exchange(port, request_bytes(method, path, payload, headers))
    assert answered == status, answer[:500]
    assert response_headers["content-type"] == "application/json"
    if status != 200:
        assert message in orjson.loads(answer)["error"]
    assert_serves(port)


def test_garbage_and_oversized_request_lines(port):
    for raw in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET /" + b"a" * 100 + b" HTTP/9.9\r\n\r\n", b"POST\r\n\r\n"):
        status, headers, answer = exchange(port, raw)
        assert status == 400 and "not a valid HTTP request" in orjson.loads(answer)["error"], answer
    assert_serves(port)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET /v2/" + b"a" * (4 * MAX_HEADER_BYTES) + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="long URL"),
        pytest.param(b"GET /v2 HTTP/1.1\r\nX-Big: " + b"a" * (4 * MAX_HEADER_BYTES) + b"\r\n\r\n", id="long header"),
        pytest.param(b"GET /v2 HTTP/1.1\r\n" + b"X-A: a\r\n" * MAX_HEADER_BYTES + b"\r\n", id="many headers"),
    ],
)
def test_oversized_headers_get_431(port, head):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the client has sent everything; the answer is already there
        status, _, answer = read_response(sock)
    # 431 from irtool's limit, or 400 where httptools refuses a line that long itself; JSON either way
    error = orjson.loads(answer)["error"]
    assert (status, f"limit of {MAX_HEADER_BYTES} bytes" in error) == (431, True) or status == 400, answer
    assert_serves(port)


def test_headers_up_to_the_limit_are_served(port):
    status, _, _ = exchange(port, request_bytes("GET", "/v2", headers={"X-Pad": "a" * (MAX_HEADER_BYTES // 2)}))
    assert status == 200


@pytest.mark.parametrize(
    "partial, status, message",
    [
        pytest.param(b"", 408, "headers did not arrive within", id="connect and say nothing"),
        pytest.param(b"GET /v2 HTTP/1.1\r\nHost: x\r\n", 408, "headers did not arrive within", id="headers cut"),
        pytest.param(
            request_bytes("POST", INFER, b"{", {"Content-Length": "100"}),
            408,
            "did not arrive within 1 s",
            id="body cut",
        ),
        pytest.param(
            request_bytes("POST", INFER, b"10\r\n{", {"Transfer-Encoding": "chunked"}),
            408,
            "did not arrive within 1 s",
            id="chunked body cut",
        ),
    ],
)
def test_slow_clients_are_cut_off(port, partial, status, message):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(partial)
        answered, _, answer = read_response(sock)
        assert sock.recv(1) == b"", "the server kept the connection open"
    assert answered == status and message in orjson.loads(answer)["error"]
    assert time.monotonic() - started < 3 * max(HEADER_TIMEOUT_S, READ_TIMEOUT_S) + 2
    assert_serves(port)


def test_a_header_dribbled_byte_by_byte_is_cut_off(port):
    """Slow loris: each byte arrives before any idle timeout would fire, the whole never does."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for byte in b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                sock.sendall(bytes([byte]))
                time.sleep(HEADER_TIMEOUT_S / 10)
                if time.monotonic() - started > 3 * HEADER_TIMEOUT_S:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, answer = read_response(sock)
    assert status == 408 and "headers did not arrive" in orjson.loads(answer)["error"]
    assert time.monotonic() - started < 3 * HEADER_TIMEOUT_S + 1


def test_keep_alive_connections_get_the_header_deadline_per_request(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(request_bytes("GET", "/v2/health/live", headers={"Connection": "keep-alive"}))
            status, _, _ = read_response(sock)
            assert status == 200
        sock.sendall(b"GET /v2 HTTP/1.1\r\n")  # a second request starts, and stalls
        status, _, answer = read_response(sock)
    assert status == 408 and "headers did not arrive" in json.loads(answer)["error"]


def test_two_thousand_connections(port):
    """2,000 sockets connect at once and send nothing: a real request is still answered at once,
    and the server closes every idle one by its header deadline."""
    sockets = []
    try:
        for _ in range(2000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sockets.append(sock)
        started = time.monotonic()
        assert_serves(port)
        assert time.monotonic() - started < 5
        closed = 0
        for sock in sockets:
            status, _, _ = read_response(sock)  # the 408, then EOF
            closed += status in (408, None)
        assert closed == len(sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert_serves(port)


def test_model_errors_inside_onnx_runtime_keep_the_server_serving(port):
    for _ in range(20):
        status, _, answer = exchange(port, request_bytes("POST", "/v2/models/add/infer", add_request(4, 3)))
        error = orjson.loads(answer)["error"]
        assert status == 400 and "could not run this request" in error and "\n" not in error
    status, _, answer = exchange(port, request_bytes("POST", "/v2/models/add/infer", add_request(3, 3)))
    assert status == 200 and orjson.loads(answer)["outputs"][0]["data"] == [0, 2, 4]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    (folder / "mlp.onnx").write_bytes(mlp().to_onnx().SerializeToString())
    (folder / "add.onnx").write_bytes(add_model().SerializeToString())
    return folder


BAD_REQUESTS = [
    request_bytes("POST", "/v2/models/add/infer", add_request(4, 3), {"Connection": "keep-alive"}),
    request_bytes("POST", "/v2/models/mlp/infer", b"{nope", {"Connection": "keep-alive"}),
    request_bytes("POST", "/v2/models/mlp/infer", body({**GOOD, "shape": [2, 392]}), {"Connection": "keep-alive"}),
    request_bytes("POST", "/v2/models/nope/infer", body(GOOD), {"Connection": "keep-alive"}),
]


def send_bad_requests(port: int, count: int, pipeline: int = 50) -> None:
    """``count`` bad requests on one keep-alive connection, ``pipeline`` in flight at a time (a
    tight client: the server's cost per request is what is measured, not the client's)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock, sock.makefile("rb") as responses:
        for start in range(0, count, pipeline):
            batch = [BAD_REQUESTS[(start + i) % len(BAD_REQUESTS)] for i in range(min(pipeline, count - start))]
            sock.sendall(b"".join(batch))
            for _ in batch:
                status, _, answer = read_response(responses)
                assert status in (400, 404) and b'"error"' in answer, (status, answer)


def test_memory_does_not_grow_over_ten_thousand_bad_requests(model_files):
    with ServeProcess(model_files / "mlp.onnx", model_files / "add.onnx", cwd=model_files) as server:
        send_bad_requests(server.port, 2000)  # warm-up: allocator arenas, caches, first-use imports
        before = server.rss_bytes()
        started = time.monotonic()
        send_bad_requests(server.port, 10_000)
        elapsed = time.monotonic() - started
        after = server.rss_bytes()
        assert after - before < 8 * 2**20, f"RSS grew {(after - before) / 2**20:.1f} MiB over 10,000 bad requests"
        status, _, _ = exchange(server.port, request_bytes("POST", "/v2/models/mlp/infer", pixels_request()))
        assert status == 200
        # the answers carry ONNX Runtime's message; its own logger does not repeat it per request
        assert not any("onnxruntime" in line for line in server.lines), server.lines[-3:]
    print(f"10,000 bad requests in {elapsed:.1f} s; RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")


def test_requests_after_sigterm_are_answered_or_refused_never_hung(model_files):
    """SIGTERM while a client holds an idle keep-alive connection and others keep connecting:
    every request gets an answer or a refused/closed connection within seconds, and the server
    exits 0."""
    with ServeProcess(model_files / "mlp.onnx", cwd=model_files) as server:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        idle.sendall(request_bytes("GET", "/v2/health/live", headers={"Connection": "keep-alive"}))
        assert read_response(idle)[0] == 200
        server.process.send_signal(signal.SIGTERM)
        outcomes = []
        deadline = time.monotonic() + 30
        while server.process.poll() is None and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status, _, _ = exchange(server.port, request_bytes("POST", "/v2/models/mlp/infer", pixels_request()), 5)
                outcomes.append(status)
            except (ConnectionRefusedError, ConnectionResetError):
                outcomes.append("refused")
            assert time.monotonic() - started < 5, "a request after SIGTERM hung"
        try:
            idle.sendall(request_bytes("GET", "/v2/health/live"))
            late = read_response(idle)[0]
        except (BrokenPipeError, ConnectionResetError):
            late = "closed"
        idle.close()
        assert server.process.wait(30) == 0
    assert late in (200, None, "closed")
    assert set(outcomes) <= {200, None, "refused"}, outcomes
    assert server.lines[-1] == "irtool: stopped", server.lines
