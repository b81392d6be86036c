"""The KServe v2 / Open Inference Protocol's infer messages, both encodings, as NumPy arrays.

One codec for every front end (the ASGI app of ``irtool serve``, the Ray Serve deployment):
``parse_infer_request`` turns a request body into named arrays and the requested outputs,
``encode_infer_response`` turns output arrays into a response body. Bodies are JSON, or JSON
followed by raw tensor bytes (Triton's binary tensor extension, what the official clients send
by default): the JSON part's length travels in the ``Inference-Header-Content-Length`` header,
an input with ``parameters.binary_data_size`` takes its bytes from the tail in input order, and
an output asked for with ``binary_data`` (or the request's ``binary_data_output``) is appended
the same way. Anything malformed is a ``ProtocolError`` whose message names the input and what
was expected and received; the server answers it as ``400 {"error": message}``.

This module knows tensors, not models: checking names and datatypes against a model's inputs
is ``check_inputs`` with the model's declared ``(name, dtype, dims)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import orjson
from onnx import TensorProto, helper

HEADER_LENGTH = "Inference-Header-Content-Length"

#: v2 datatype names and the NumPy dtypes that carry them (BYTES: object arrays of ``str`` from JSON,
#: of ``bytes`` from binary data; the session's feeds decode those as UTF-8).
DATATYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    # ml_dtypes' bfloat16, as graph_io reads it (onnx before 1.17 gave uint16, which is UINT16's)
    **({"BF16": _BF16} if (_BF16 := helper.tensor_dtype_to_np_dtype(TensorProto.BFLOAT16)) != np.uint16 else {}),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}


class ProtocolError(ValueError):
    """A request the protocol cannot accept; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def datatype_of(dtype) -> str:
    """The v2 datatype name of a NumPy dtype (strings and bytes are ``BYTES``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return _NAMES[dtype]
    except KeyError:
        raise ProtocolError(f"dtype {dtype} has no KServe v2 datatype") from None


@dataclass
class InferRequest:
    """A parsed infer request: arrays by input name, the outputs asked for (``None``: all), and
    for each of those whether it goes back as binary data."""

    inputs: dict
    id: str | None = None
    parameters: dict = field(default_factory=dict)
    outputs: list | None = None
    binary_outputs: dict = field(default_factory=dict)
    binary_default: bool = False

    def wants_binary(self, name: str) -> bool:
        return self.binary_outputs.get(name, self.binary_default)


def parse_infer_request(body: bytes, header_length=None) -> InferRequest:
    """Decode an infer request body (``header_length``: the ``Inference-Header-Content-Length``
    header's value, present when binary tensor data follows the JSON)."""
    json_part, tail = _split(body, header_length)
    try:
        message = orjson.loads(json_part)
    except orjson.JSONDecodeError as error:
        hint = (
            ""
            if header_length is not None
            else f" (binary tensor data after the JSON needs the {HEADER_LENGTH} header)"
        )
        raise ProtocolError(f"the request body is not valid JSON: {error}{hint}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"the request body must be a JSON object, received {type(message).__name__}")
    parameters = _object(message.get("parameters", {}), "the request's 'parameters'")
    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"'id' must be a string, received {request_id!r}")
    entries = message.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise ProtocolError("the request must have a non-empty 'inputs' list")
    inputs, offset = {}, 0
    for entry in entries:
        name, array, offset = _input(entry, tail, offset)
        if name in inputs:
            raise ProtocolError(f"input '{name}' is given twice")
        inputs[name] = array
    if offset != len(tail):
        raise ProtocolError(f"the request has {len(tail) - offset} bytes of binary data that no input claims")
    request = InferRequest(inputs, request_id, parameters, binary_default=bool(parameters.get("binary_data_output")))
    if "outputs" in message:
        requested = message["outputs"]
        if not isinstance(requested, list):
            raise ProtocolError("'outputs' must be a list of {\"name\": ...} objects")
        request.outputs = []
        for entry in requested:
            entry = _object(entry, "each of 'outputs'")
            name = entry.get("name")
            if not isinstance(name, str):
                raise ProtocolError(f"each of 'outputs' needs a string 'name', received {entry!r}")
            output_parameters = _object(entry.get("parameters", {}), f"output '{name}' 'parameters'")
            if "classification" in output_parameters:
                raise ProtocolError(f"output '{name}': the classification extension is not supported")
            if "binary_data" in output_parameters:
                request.binary_outputs[name] = bool(output_parameters["binary_data"])
            request.outputs.append(name)
    return request


def check_inputs(request: InferRequest, declared) -> None:
    """Check a request's inputs against a model's ``declared`` inputs (objects with ``name``,
    ``dtype`` and ``shape``, as ``irtool.runtime.TensorInfo``: an int per fixed dim, a name or
    ``None`` per dynamic one, ``None`` for an unknown rank): every input given once, no unknown
    one, datatypes equal, ranks and fixed dims equal. Messages name the input, the expected and
    the received."""
    declared = {d.name: d for d in declared}
    if request.inputs.keys() != declared.keys():
        unknown = sorted(set(request.inputs) - set(declared))
        if unknown:
            raise ProtocolError(
                f"unknown input {', '.join(map(repr, unknown))}; the model's inputs are {sorted(declared)}"
            )
        missing = sorted(set(declared) - set(request.inputs))
        raise ProtocolError(f"missing input {', '.join(map(repr, missing))}; the model's inputs are {sorted(declared)}")
    for name, array in request.inputs.items():
        spec = declared[name]
        if spec.dtype is None or array.dtype != spec.dtype:  # equal dtypes: equal datatypes, no lookup
            expected, received = datatype_of(spec.dtype), datatype_of(array.dtype)
            if expected != received:
                raise ProtocolError(f"input '{name}': datatype {received}, the model expects {expected}")
        shape = spec.shape
        if shape is None:
            continue
        if len(shape) != array.ndim or any(isinstance(d, int) and d != n for d, n in zip(shape, array.shape)):
            dims = v2_dims(shape)
            raise ProtocolError(f"input '{name}': shape {list(array.shape)}, the model expects {dims} (-1: any size)")


def v2_dims(shape) -> list:
    """A declared shape as the protocol writes it: fixed dims as ints, dynamic ones as -1."""
    return [d if isinstance(d, int) else -1 for d in shape]


def encode_infer_response(model_name, outputs: dict, request: InferRequest, model_version=None):
    """The response body for ``outputs`` (arrays by name, in the model's order), restricted to what
    ``request`` asked for; returns ``(body, header_length)``, ``header_length`` being ``None``
    when the body is plain JSON."""
    names = list(outputs) if request.outputs is None else request.outputs
    unknown = [n for n in names if n not in outputs]
    if unknown:
        raise ProtocolError(f"unknown output {', '.join(map(repr, unknown))}; the model's outputs are {list(outputs)}")
    entries, chunks = [], []
    for name in names:
        array = np.asarray(outputs[name])
        datatype = datatype_of(array.dtype)
        entry = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if request.wants_binary(name):
            raw = _to_bytes(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _to_json_data(array, datatype)
        entries.append(entry)
    message = {"model_name": model_name, "outputs": entries}
    if model_version is not None:
        message["model_version"] = str(model_version)
    if request.id is not None:
        message["id"] = request.id
    header = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


# -- inputs --------------------------------------------------------------------------------------


def _split(body: bytes, header_length):
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except (TypeError, ValueError):
        raise ProtocolError(f"{HEADER_LENGTH} must be an integer, received {header_length!r}") from None
    if not 0 < length <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
    return body[:length], memoryview(body)[length:]


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, received {value!r}")
    return value


def _input(entry, tail, offset):
    entry = _object(entry, "each of 'inputs'")
    name = entry.get("name")
    if not isinstance(name, str):
        raise ProtocolError(f"each of 'inputs' needs a string 'name', received {entry.get('name')!r}")
    datatype = entry.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:  # a list or object is unhashable
        raise ProtocolError(f"input '{name}': datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"input '{name}': 'shape' must be a list of non-negative integers, received {shape!r}")
    parameters = _object(entry.get("parameters", {}), f"input '{name}' 'parameters'")
    if any(key.startswith("shared_memory") for key in parameters):
        raise ProtocolError(f"input '{name}': the shared-memory extension is not supported")
    count = math.prod(shape)
    dtype = DATATYPES[datatype]
    if "binary_data_size" in parameters:
        if "data" in entry:
            raise ProtocolError(f"input '{name}' has both 'data' and binary_data_size")
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or size < 0 or offset + size > len(tail):
            raise ProtocolError(
                f"input '{name}': binary_data_size {size!r} but {len(tail) - offset} bytes of binary data are left"
            )
        array = _from_bytes(name, tail[offset : offset + size], dtype, shape, count)
        return name, array, offset + size
    if "data" not in entry:
        raise ProtocolError(f"input '{name}' has no 'data' (nor binary_data_size)")
    return name, _from_json_data(name, entry["data"], datatype, dtype, shape, count), offset


def _from_json_data(name, data, datatype, dtype, shape, count):
    try:
        if datatype == "BYTES":
            flat = list(_flatten(data))
            if not all(isinstance(v, str) for v in flat):
                raise TypeError("BYTES data must be strings")
            array = np.array(flat, dtype=object)  # str elements, as ONNX Runtime reads them
        else:
            array = np.asarray(data)
            if array.size == 0:  # [] parses as float64: no value to check
                array = array.astype(dtype)
            elif array.dtype.kind not in "biuf" or (datatype == "BOOL") != (array.dtype.kind == "b"):
                raise TypeError(f"{datatype} data must be {'booleans' if datatype == 'BOOL' else 'numbers'}")
            if dtype.kind in "iub" and array.dtype.kind == "f":
                raise TypeError(f"{datatype} data must be integers, received floating-point numbers")
            converted = array.astype(dtype)
            if dtype.kind in "iu" and not np.array_equal(converted, array):
                raise TypeError(f"values out of range for {datatype}")
            array = converted.reshape(-1)
    except (TypeError, ValueError, OverflowError) as error:
        raise ProtocolError(f"input '{name}': unable to parse 'data' as {datatype}: {error}") from None
    if array.size != count:
        raise ProtocolError(f"input '{name}': 'data' has {array.size} elements but shape {shape} needs {count}")
    return _reshaped(name, array, shape)


def _reshaped(name, array, shape):
    """``array`` in ``shape``; a shape NumPy cannot make (a dim past 2**63 beside a 0) is the client's error."""
    try:
        return array.reshape(shape)
    except ValueError as error:
        raise ProtocolError(
            f"input '{name}': shape {shape} is not an array shape this server can make: {error}"
        ) from None


def _flatten(data):
    """The leaves of nested lists, in row-major order; iterative, so any nesting the JSON parser
    accepted is no ``RecursionError`` (a 500) here."""
    stack = [iter([data])]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def _from_bytes(name, raw, dtype, shape, count):
    if dtype.kind != "O":
        if len(raw) != count * dtype.itemsize:
            raise ProtocolError(
                f"input '{name}': {len(raw)} bytes of binary data but shape {shape} of "
                f"{_NAMES[dtype]} needs {count * dtype.itemsize}"
            )
        array = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        if dtype.kind == "b" and array.view(np.uint8).max(initial=0) > 1:  # NumPy would keep the raw byte
            raise ProtocolError(f"input '{name}': BOOL binary data must be bytes 0 or 1")
        return _reshaped(name, array.astype(dtype, copy=True), shape)
    items, position, raw = [], 0, bytes(raw)
    while position < len(raw):
        if position + 4 > len(raw):
            raise ProtocolError(f"input '{name}': BYTES data ends inside an element's 4-byte length")
        length = int.from_bytes(raw[position : position + 4], "little")
        position += 4
        if position + length > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element of {length} bytes runs past the data")
        items.append(raw[position : position + length])
        position += length
    if len(items) != count:
        raise ProtocolError(f"input '{name}': {len(items)} BYTES elements but shape {shape} needs {count}")
    return _reshaped(name, np.array(items, dtype=object), shape)


# -- outputs -------------------------------------------------------------------------------------


def _to_bytes(array, datatype) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts = []
    for item in array.reshape(-1):
        item = item if isinstance(item, bytes) else str(item).encode()
        parts += [len(item).to_bytes(4, "little"), item]
    return b"".join(parts)


def _to_json_data(array, datatype):
    flat = array.reshape(-1)
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    if datatype in ("FP16", "BF16"):
        flat = flat.astype(np.float32)
    return flat  # orjson writes NumPy arrays natively (OPT_SERIALIZE_NUMPY)
