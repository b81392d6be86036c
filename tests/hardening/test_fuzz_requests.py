"""Random v2 request bodies (hypothesis, bounded and derandomized) against the codec and a real
server: anything a client sends is answered 200 or a 4xx with ``{"error": ...}``, never a 5xx or a
dropped connection, and the server keeps serving."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("uvicorn")

from irtool.serving.protocol import DATATYPES, ProtocolError, check_inputs, parse_infer_request  # noqa: E402

from ._server_tools import ThreadServer, exchange, pixels_request, request_bytes, served_models  # noqa: E402

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
names = st.sampled_from(["pixels", "x", "y", "s", ""]) | st.text(max_size=6)
datatypes = st.sampled_from([*DATATYPES, "FP8", "fp32", ""]) | json_value
shapes = st.lists(st.integers(-2, 6), max_size=4) | st.sampled_from([[1, 784], [0, 784], [10**12]]) | json_value


@st.composite
def data_for(draw, shape):
    """Data that fits the shape often enough to reach the model, and garbage otherwise."""
    count = (
        int(np.prod(shape)) if isinstance(shape, list) and all(isinstance(d, int) and 0 <= d <= 6 for d in shape) else 3
    )
    if isinstance(shape, list) and shape == [1, 784]:
        count = 784
    element = st.sampled_from(
        [st.floats(-10, 10, width=32), st.integers(-300, 300), st.booleans(), st.text(max_size=3)]
    )
    return draw(st.one_of(st.lists(draw(element), min_size=count, max_size=count), json_value))


@st.composite
def input_entries(draw):
    entry = {}
    if draw(st.integers(0, 9)):
        entry["name"] = draw(names)
    entry["datatype"] = draw(datatypes)
    shape = draw(shapes)
    entry["shape"] = shape
    if draw(st.integers(0, 9)):
        entry["data"] = draw(data_for(shape))
    if not draw(st.integers(0, 5)):
        entry["parameters"] = draw(json_value)
    return entry


@st.composite
def messages(draw):
    message = {"inputs": draw(st.lists(input_entries(), max_size=3) | json_value)}
    for key, values in [("id", json_value), ("parameters", json_value), ("outputs", json_value)]:
        if not draw(st.integers(0, 4)):
            message[key] = draw(values)
    if not draw(st.integers(0, 9)):
        return draw(json_value)
    return message


@st.composite
def bodies(draw):
    """``(body bytes, headers)``: a JSON message, perhaps with binary tensor data, perhaps cut or
    with a few bytes flipped."""
    raw = json.dumps(draw(messages())).encode()
    headers = {}
    if not draw(st.integers(0, 3)):
        tail = draw(st.binary(max_size=64))
        length = draw(
            st.sampled_from([len(raw), 0, -1, len(raw) + len(tail) + 1])
            | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=4)
        )
        headers["Inference-Header-Content-Length"] = str(length)
        raw += tail
    if not draw(st.integers(0, 4)) and raw:
        position = draw(st.integers(0, len(raw) - 1))
        raw = raw[:position] + bytes([draw(st.integers(0, 255))]) + raw[position + 1 :]
    if not draw(st.integers(0, 6)):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw, headers


DECLARED = [type("Spec", (), {"name": "pixels", "dtype": np.dtype(np.float32), "shape": ("batch", 784)})()]


@FUZZ
@given(bodies())
def test_the_codec_raises_only_protocol_errors(case):
    body, headers = case
    try:
        request = parse_infer_request(body, headers.get("Inference-Header-Content-Length"))
        check_inputs(request, DECLARED)
    except ProtocolError as error:
        assert 400 <= error.status < 500 and str(error)


@pytest.fixture(scope="module")
def port():
    with ThreadServer(served_models()) as port:
        yield port


@FUZZ
@given(case=bodies(), model=st.sampled_from(["plain", "mlp", "add"]))
def test_random_bodies_never_get_a_5xx(port, case, model):
    body, headers = case
    status, response_headers, answer = exchange(port, request_bytes("POST", f"/v2/models/{model}/infer", body, headers))
    assert status is not None, "the server dropped the connection"
    assert status < 500, answer[:300]
    if status != 200:
        assert 400 <= status < 500 and orjson.loads(answer)["error"]


def test_the_server_still_serves_after_the_fuzzing(port):
    status, _, answer = exchange(port, request_bytes("POST", "/v2/models/plain/infer", pixels_request()))
    assert status == 200 and len(orjson.loads(answer)["outputs"][0]["data"]) == 10


@FUZZ
@given(st.recursive(st.text(max_size=3), lambda inner: st.lists(inner, min_size=1, max_size=3), max_leaves=20))
def test_bytes_data_flattens_in_row_major_order(nested):
    """The iterative flattening visits leaves in the order a recursive walk does."""

    def leaves(value):
        return [x for item in value for x in leaves(item)] if isinstance(value, list) else [value]

    expected = leaves(nested)
    body = orjson.dumps({"inputs": [{"name": "s", "shape": [len(expected)], "datatype": "BYTES", "data": nested}]})
    assert parse_infer_request(body).inputs["s"].tolist() == expected  # JSON carries text: str elements
