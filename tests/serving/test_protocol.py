"""The v2 codec against the official client: requests built by tritonclient.http decode to the
arrays it was given, and responses we encode decode in tritonclient to the arrays we sent."""

import re
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

tritonclient_http = pytest.importorskip("tritonclient.http")

from irtool.serving.protocol import (  # noqa: E402
    DATATYPES,
    ProtocolError,
    check_inputs,
    datatype_of,
    encode_infer_response,
    parse_infer_request,
)

RNG = np.random.default_rng(0)
ARRAYS = {
    "BOOL": RNG.random((2, 3)) > 0.5,
    "UINT8": RNG.integers(0, 255, (2, 3)).astype(np.uint8),
    "UINT16": RNG.integers(0, 60000, (4,)).astype(np.uint16),
    "UINT32": RNG.integers(0, 2**32 - 1, (2, 2)).astype(np.uint32),
    "UINT64": RNG.integers(0, 2**63, (3,)).astype(np.uint64),
    "INT8": RNG.integers(-128, 127, (2, 3)).astype(np.int8),
    "INT16": RNG.integers(-3000, 3000, (2, 3)).astype(np.int16),
    "INT32": RNG.integers(-(2**31), 2**31 - 1, (1, 4)).astype(np.int32),
    "INT64": RNG.integers(-(2**62), 2**62, (2, 1)).astype(np.int64),
    "FP16": RNG.normal(size=(2, 3)).astype(np.float16),
    "FP32": RNG.normal(size=(2, 3, 2)).astype(np.float32),
    "FP64": RNG.normal(size=(3,)),
    "BYTES": np.array([[b"a", b""], ["ü".encode(), b"xyz"]], dtype=object),
}


def client_request(arrays: dict, binary: bool, outputs=None, request_id="", parameters=None):
    inputs = []
    for name, array in arrays.items():
        datatype = name if name in ARRAYS else "FP32"
        tensor = tritonclient_http.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, header_length = tritonclient_http.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, request_id=request_id, parameters=parameters
    )
    return body if isinstance(body, bytes) else body.encode(), header_length


@pytest.mark.parametrize("binary", [False, True])
def test_requests_from_tritonclient_decode_exactly(binary):
    arrays = {k: v for k, v in ARRAYS.items() if binary or k != "FP16"}  # FP16 has no JSON form in the client
    body, header_length = client_request(arrays, binary, request_id="r-1")
    request = parse_infer_request(body, header_length)
    assert request.id == "r-1" and request.outputs is None
    for name, array in arrays.items():
        got = request.inputs[name]
        if not binary and name == "BYTES":  # JSON carries text: str elements (binary data: bytes)
            array = np.vectorize(bytes.decode, otypes=[object])(array)
        assert got.shape == array.shape and got.dtype == array.dtype, name
        assert np.array_equal(got, array), name


@pytest.mark.parametrize("binary", [False, True])
def test_responses_decode_in_tritonclient(binary):
    outputs = {k: v for k, v in ARRAYS.items()}
    requested = [tritonclient_http.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    body, header_length = client_request({"x": np.zeros((1, 2), np.float32)}, False, outputs=requested, request_id="7")
    request = parse_infer_request(body, header_length)
    payload, length = encode_infer_response("m", outputs, request, model_version=1)
    assert (length is not None) == binary
    result = tritonclient_http.InferResult.from_response_body(payload, header_length=length)
    assert result.get_response()["id"] == "7" and result.get_response()["model_version"] == "1"
    for name, array in outputs.items():
        got = result.as_numpy(name)
        if not binary and name == "FP16":
            np.testing.assert_allclose(got, array, rtol=1e-3)
            continue
        if not binary and name == "BYTES":  # JSON carries text; the client gives it back as str
            array = np.vectorize(bytes.decode, otypes=[object])(array)
        assert got.shape == array.shape and np.array_equal(got, array), name


def test_output_subset_and_request_level_binary():
    body = orjson.dumps(
        {
            "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}],
            "outputs": [{"name": "b"}, {"name": "a", "parameters": {"binary_data": False}}],
            "parameters": {"binary_data_output": True},
        }
    )
    request = parse_infer_request(body)
    outputs = {"a": np.ones(2, np.float32), "b": np.arange(3, dtype=np.int64), "c": np.zeros(1)}
    payload, length = encode_infer_response("m", outputs, request)
    header = orjson.loads(payload[:length])
    assert [o["name"] for o in header["outputs"]] == ["b", "a"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 24} and header["outputs"][1]["data"] == [1, 1]
    assert np.array_equal(np.frombuffer(payload[length:], np.int64), np.arange(3))


def test_nested_json_data_is_row_major():
    body = orjson.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]}]})
    assert parse_infer_request(body).inputs["x"].tolist() == [[1, 2], [3, 4]]


def _json(**entry):
    return orjson.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2], **entry}]})


@pytest.mark.parametrize(
    "body, header_length, message",
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"{}", None, "non-empty 'inputs'"),
        (_json(datatype="FP8"), None, "datatype 'FP8' is not one of"),
        (_json(shape=[3]), None, "'data' has 2 elements but shape [3] needs 3"),
        (_json(shape=[-2]), None, "non-negative integers"),
        (_json(data=["a", "b"]), None, "unable to parse 'data' as FP32"),
        (_json(datatype="INT32", data=[1.5, 2]), None, "must be integers"),
        (_json(datatype="UINT8", data=[1, 300]), None, "out of range"),
        (_json(data=None), None, "unable to parse"),
        (orjson.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32"}]}), None, "has no 'data'"),
        (_json(parameters={"binary_data_size": 8}), None, "both 'data' and binary_data_size"),
        (_json(), "abc", "must be an integer"),
        (_json(), "100000", "but the body has"),
        (_json() + b"\x00\x01", None, "binary tensor data after the JSON needs the Inference-Header-Content-Length"),
        (_json(shape=[0, 2**63 - 1, 3], data=[]), None, "shape [0, 9223372036854775807, 3] is not an array shape"),
        (_json(datatype="BYTES", shape=[0, 2**64 - 1], data=[]), None, "is not an array shape"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body, header_length, message):
    with pytest.raises(ProtocolError, match=re.escape(message)) as caught:
        parse_infer_request(body, header_length)
    assert caught.value.status == 400


@pytest.mark.parametrize("datatype, dtype", [("INT64", np.int64), ("BOOL", np.bool_), ("UINT8", np.uint8)])
def test_empty_json_data_takes_the_datatype(datatype, dtype):
    """``[]`` parses as float64; zero rows of an integer or BOOL input are no type error."""
    got = parse_infer_request(_json(datatype=datatype, shape=[0, 4], data=[])).inputs["x"]
    assert got.shape == (0, 4) and got.dtype == dtype


def test_bool_binary_data_is_bytes_0_or_1():
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}}]}
    )
    assert parse_infer_request(header + b"\x01\x00", len(header)).inputs["x"].tolist() == [True, False]
    with pytest.raises(ProtocolError, match="BOOL binary data must be bytes 0 or 1"):
        parse_infer_request(header + b"\x02\x00", len(header))


def test_bf16_has_its_v2_datatype():
    bf16 = DATATYPES["BF16"]
    assert datatype_of(bf16) == "BF16" and bf16.itemsize == 2
    got = parse_infer_request(_json(datatype="BF16", data=[1.5, -2])).inputs["x"]
    assert got.dtype == bf16 and got.astype(np.float32).tolist() == [1.5, -2.0]


def test_binary_sizes_are_checked():
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}
    )
    with pytest.raises(ProtocolError, match="binary_data_size 8 but 4 bytes"):
        parse_infer_request(header + b"\0" * 4, len(header))
    with pytest.raises(ProtocolError, match="4 bytes of binary data that no input claims"):
        parse_infer_request(header + b"\0" * 12, len(header))
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}
    )
    with pytest.raises(ProtocolError, match="4 bytes of binary data but shape \\[2\\] of FP32 needs 8"):
        parse_infer_request(header + b"\0" * 4, len(header))


def test_inputs_are_checked_against_the_model():
    declared = [SimpleNamespace(name="img", dtype=np.float32, shape=("batch", 784))]
    ok = parse_infer_request(
        orjson.dumps({"inputs": [{"name": "img", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}]})
    )
    check_inputs(ok, declared)
    cases = [
        ({"name": "image", "shape": [1], "datatype": "FP32", "data": [0]}, "unknown input 'image'"),
        (
            {"name": "img", "shape": [1, 784], "datatype": "FP64", "data": [0] * 784},
            "datatype FP64, the model expects FP32",
        ),
        (
            {"name": "img", "shape": [2, 783], "datatype": "FP32", "data": [0] * 1566},
            "shape [2, 783], the model expects [-1, 784]",
        ),
        (
            {"name": "img", "shape": [784], "datatype": "FP32", "data": [0] * 784},
            "shape [784], the model expects [-1, 784]",
        ),
    ]
    for entry, message in cases:
        with pytest.raises(ProtocolError, match=re.escape(message)):
            check_inputs(parse_infer_request(orjson.dumps({"inputs": [entry]})), declared)
    request = parse_infer_request(
        orjson.dumps(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "nope"}]}
        )
    )
    with pytest.raises(ProtocolError, match="unknown output 'nope'"):
        encode_infer_response("m", {"y": np.zeros(1)}, request)
