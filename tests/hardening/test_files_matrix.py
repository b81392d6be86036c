"""Hostile and broken files: ONNX (truncated, corrupt, oversized, external data escaping its folder),
``.keras`` archives (zip-slip names, bad and deeply nested JSON, huge declared shapes, missing or
extra HDF5 groups, Lambda layers, unknown classes, zip bombs) and ``.weights.h5`` files.

One row per case: ``make(folder)`` writes the bad file from a good one, ``load`` is the entry point,
and the outcome is irtool's own error type with a message naming the file and what is wrong.
Nothing is written beside the file and nothing outside the folder is read.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irtool
from irtool import importer, layers, saving
from irtool.importer import OnnxImportError
from irtool.loading import LoadError, load
from irtool.memory import MemoryLimitError
from irtool.saving.h5_weights import WeightsFormatError
from irtool.saving.saving_lib import ArchiveError

from .matrix import LEAKED_ERRORS, files_under, run_cli


@dataclass(frozen=True)
class FileCase:
    make: Callable[[Path], Path]
    load: Callable[[Path], object]
    error: type | tuple
    fragments: tuple[str, ...]


# -- good files the rows start from ---------------------------------------------------------------
def _model():
    inputs = irtool.Input((4,), name="x")
    hidden = layers.Dense(3, name="hidden")(inputs)
    return irtool.Model(inputs, layers.Dense(2, name="out")(hidden), name="m")


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("originals")
    model = _model()
    model.export(folder / "m.onnx")
    model.save(folder / "m.keras")
    model.save_weights(folder / "m.weights.h5")
    with zipfile.ZipFile(folder / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return {
        "onnx": (folder / "m.onnx").read_bytes(),
        "members": members,
        "weights": (folder / "m.weights.h5").read_bytes(),
    }


ORIGINALS: dict = {}


@pytest.fixture(autouse=True)
def _originals(originals):
    ORIGINALS.update(originals)


def _write(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


# -- ONNX rows --------------------------------------------------------------------------------------
def onnx_bytes(fraction: float) -> Callable[[Path], Path]:
    return lambda d: _write(d, "m.onnx", ORIGINALS["onnx"][: int(len(ORIGINALS["onnx"]) * fraction)])


def onnx_proto(build: Callable[[], onnx.ModelProto], name: str = "m.onnx") -> Callable[[Path], Path]:
    return lambda d: _write(d, name, build().SerializeToString())


def _graph(initializer=None, x_dims=(None, 4), nodes=None, y_dims=(None, 2)):
    inits = [initializer] if initializer is not None else []
    nodes = nodes or [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_dims))],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(data_type=TensorProto.FLOAT, dims=(4, 2)):
    """A 4x2 float32 weight's 32 bytes, declared with ``data_type`` and ``dims``."""
    tensor = TensorProto(name="w", data_type=data_type, dims=list(dims))
    tensor.raw_data = np.ones((4, 2), "float32").tobytes()
    return tensor


def external(location: str, length: int = 32) -> Callable[[Path], Path]:
    """``m.onnx`` in ``folder/model/`` whose weight ``w`` lives in external data at ``location``."""

    def make(d: Path) -> Path:
        folder = d / "model"
        folder.mkdir(exist_ok=True)
        (folder / "w.bin").write_bytes(np.ones((4, 2), "float32").tobytes())
        (d / "secret.bin").write_bytes(np.full((4, 2), 7, "float32").tobytes())
        if not (folder / "link.bin").is_symlink():
            (folder / "link.bin").symlink_to(d / "secret.bin")
        weight = numpy_helper.from_array(np.ones((4, 2), "float32"), "w")
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in {"location": location.replace("{d}", str(d)), "offset": "0", "length": str(length)}.items():
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        return _write(folder, "m.onnx", _graph(weight).SerializeToString())

    return make


def _cycle():
    nodes = [
        helper.make_node("Relu", ["b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Add", ["x", "b"], ["y"], name="out"),
    ]
    return _graph(nodes=nodes)


def via_loading(path: Path):
    return load(path).onnx_model()


def via_cli_run(path: Path):
    code, out, err = run_cli(["run", str(path), "--random"])
    assert "Traceback" not in out + err
    if code:
        raise LoadError(err.strip())
    return out


READABLE = "is not a readable ONNX model"

# fmt: off
ONNX = {
    "truncated to a quarter": FileCase(onnx_bytes(0.25), via_loading, LoadError, ("m.onnx", READABLE)),
    "truncated to a half": FileCase(onnx_bytes(0.5), via_loading, LoadError, ("m.onnx", READABLE)),
    "truncated by one byte": FileCase(onnx_bytes(1 - 1e-9), via_loading, LoadError, ("m.onnx", READABLE)),
    "truncated, imported": FileCase(onnx_bytes(0.5), importer.load, OnnxImportError, ("m.onnx", READABLE)),
    "empty": FileCase(onnx_bytes(0), via_loading, LoadError, ("m.onnx", "it holds no graph")),
    "empty, imported": FileCase(onnx_bytes(0), importer.load, OnnxImportError, ("m.onnx", "it holds no graph")),
    "empty, run": FileCase(onnx_bytes(0), via_cli_run, LoadError, ("m.onnx", "it holds no graph")),
    "random bytes": FileCase(lambda d: _write(d, "m.onnx", np.random.default_rng(0).bytes(700)), via_loading, LoadError, ("m.onnx", READABLE)),
    "a zip archive": FileCase(lambda d: _write(d, "m.onnx", b"PK\x03\x04" + bytes(200)), via_loading, LoadError, ("m.onnx", READABLE)),
    "text": FileCase(lambda d: _write(d, "m.onnx", b"ir_version: 8\n"), via_loading, LoadError, ("m.onnx", READABLE)),
    "a header with no graph": FileCase(onnx_proto(lambda: onnx.ModelProto(ir_version=8)), via_loading, LoadError, ("it holds no graph",)),
    "unknown initializer type": FileCase(onnx_proto(lambda: _graph(_weight(data_type=106))), importer.load, OnnxImportError, ("initializer 'w'", "data type 106")),
    "initializer shorter than its dims": FileCase(onnx_proto(lambda: _graph(_weight(dims=(10**12, 2)))), importer.load, OnnxImportError, ("initializer 'w'", "1000000000000")),
    "initializer shorter than its dims, run": FileCase(onnx_proto(lambda: _graph(_weight(dims=(10**12, 2)))), via_cli_run, LoadError, ("ONNX Runtime cannot load", "m.onnx")),
    "huge declared input, run": FileCase(onnx_proto(lambda: _graph(x_dims=(10**7, 10**7), y_dims=(10**7, 10**7), nodes=[helper.make_node("Relu", ["x"], ["y"])])), via_cli_run, LoadError, ("cannot make random inputs", "'x' of shape (10000000, 10000000)", "of memory available")),
    "a node cycle, imported": FileCase(onnx_proto(_cycle), importer.load, OnnxImportError, ("'first'", "'b'")),
    "a node cycle, run": FileCase(onnx_proto(_cycle), via_cli_run, LoadError, ("ONNX Runtime cannot load", "m.onnx")),
    "external data ../": FileCase(external("../secret.bin"), via_loading, LoadError, ("m.onnx", "'../secret.bin' points outside")),
    "external data ../, imported": FileCase(external("../secret.bin"), importer.load, OnnxImportError, ("'../secret.bin' points outside",)),
    "external data ../, run": FileCase(external("../secret.bin"), via_cli_run, LoadError, ("m.onnx", "escapes model directory")),
    "external data sub/../../": FileCase(external("sub/../../secret.bin"), via_loading, LoadError, ("'sub/../../secret.bin' points outside",)),
    "external data absolute": FileCase(external("{d}/secret.bin"), via_loading, LoadError, ("should be a relative path", "secret.bin")),
    "external data absolute, imported": FileCase(external("{d}/secret.bin"), importer.load, OnnxImportError, ("should be a relative path",)),
    "external data absolute, run": FileCase(external("{d}/secret.bin"), via_cli_run, LoadError, ("Absolute path not allowed",)),
    "external data /etc/passwd": FileCase(external("/etc/passwd"), via_loading, LoadError, ("should be a relative path", "/etc/passwd")),
    "external data symlink": FileCase(external("link.bin"), via_loading, LoadError, ("link.bin", "symbolic link")),
    "external data symlink, imported": FileCase(external("link.bin"), importer.load, OnnxImportError, ("symbolic link",)),
    "external data symlink, run": FileCase(external("link.bin"), via_cli_run, LoadError, ("link.bin", "escapes model directory")),
    "external data missing": FileCase(external("missing.bin"), via_loading, LoadError, ("missing.bin",)),
    "external data missing, run": FileCase(external("missing.bin"), via_cli_run, LoadError, ("missing.bin", "does not exist")),
    "external data past its file": FileCase(external("w.bin", length=4096), via_loading, LoadError, ("m.onnx",)),
}
# fmt: on


# -- .keras rows ------------------------------------------------------------------------------------
def archive(change: Callable[[dict], dict], compression=zipfile.ZIP_STORED) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        members = change(dict(ORIGINALS["members"]))
        with zipfile.ZipFile(d / "m.keras", "w", compression=compression) as out:
            for name, data in members.items():
                out.writestr(name, data if isinstance(data, bytes) else json.dumps(data))
        return d / "m.keras"

    return make


def config(change: Callable[[dict], None]) -> Callable[[dict], dict]:
    def edit(members: dict) -> dict:
        value = json.loads(members["config.json"])
        change(value)
        return {**members, "config.json": json.dumps(value).encode()}

    return edit


def _layer(value: dict, name: str) -> dict:
    return next(layer for layer in value["config"]["layers"] if layer["config"]["name"] == name)


def _huge_input(value: dict) -> None:
    _layer(value, "x")["config"]["batch_shape"] = [None, 10**12]
    _layer(value, "hidden")["build_config"]["input_shape"] = [None, 10**12]


def _huge_units(value: dict) -> None:
    _layer(value, "out")["config"]["units"] = 10**13


def _unknown_class(value: dict) -> None:
    _layer(value, "out")["class_name"] = "NoSuchLayer"


def _lambda(value: dict) -> None:
    layer = _layer(value, "out")
    layer["class_name"] = "Lambda"
    layer["config"] = {
        "name": "out",
        "function": {"class_name": "__lambda__", "config": {"code": "4wAAAA==", "defaults": None, "closure": None}},
    }


def _nested(value: dict) -> None:
    value["config"]["name"] = {"a": None}
    inner = value["config"]["name"]
    for _ in range(500):
        inner["a"] = {"a": None}
        inner = inner["a"]


def weights_member(change: Callable[[h5py.File], None]) -> Callable[[dict], dict]:
    def edit(members: dict) -> dict:
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as file:
            change(file)
        return {**members, "model.weights.h5": buffer.getvalue()}

    return edit


def _declared_size(name: str, size: int) -> Callable[[Path], Path]:
    """A deflated member whose central directory declares ``size`` bytes: inflating would take that much."""

    def make(d: Path) -> Path:
        path = archive(lambda m: m, compression=zipfile.ZIP_DEFLATED)(d)
        data = bytearray(path.read_bytes())
        entry = data.index(b"PK\x01\x02")
        while True:  # find the central directory entry of ``name``
            name_length = struct.unpack_from("<H", data, entry + 28)[0]
            if data[entry + 46 : entry + 46 + name_length] == name.encode():
                break
            entry = data.index(b"PK\x01\x02", entry + 4)
        struct.pack_into("<I", data, entry + 24, size)
        path.write_bytes(bytes(data))
        return path

    return make


def via_saving(path: Path):
    return saving.load_model(path, compile=False)


def via_cli_summary(path: Path):
    code, out, err = run_cli(["summary", str(path)])
    assert "Traceback" not in out + err
    if code:
        raise LoadError(err.strip())
    return out


def _drop(name: str) -> Callable[[dict], dict]:
    return lambda members: {k: v for k, v in members.items() if k != name}


def _add(name: str, data: bytes = b"{}") -> Callable[[dict], dict]:
    return lambda members: {**members, name: data}


def _resize(file: h5py.File, path: str, shape, dtype="float32") -> None:
    del file[path]
    file.create_dataset(path, data=np.zeros(shape, dtype))


def _strings(file: h5py.File) -> None:
    del file["layers/dense_1/vars/0"]
    file.create_dataset("layers/dense_1/vars/0", data=np.array([b"ab"] * 6).reshape(3, 2))


def _soft_link(file: h5py.File) -> None:
    del file["layers/dense_1/vars/0"]
    file["layers/dense_1/vars/0"] = h5py.SoftLink("/layers/dense/vars/0")


def _external_link(file: h5py.File) -> None:
    del file["layers/dense_1/vars/0"]
    file["layers/dense_1/vars/0"] = h5py.ExternalLink("/etc/passwd", "/x")


SLIP = "escapes the archive"

# fmt: off
KERAS = {
    "zip-slip ../": FileCase(archive(_add("../evil.json")), via_saving, ArchiveError, ("'../evil.json'", SLIP)),
    "zip-slip nested ../": FileCase(archive(_add("assets/../../evil.json")), via_saving, ArchiveError, ("'assets/../../evil.json'", SLIP)),
    "zip-slip absolute": FileCase(archive(_add("/tmp/evil.json")), via_saving, ArchiveError, ("'/tmp/evil.json'", SLIP)),
    "zip-slip backslashes": FileCase(archive(_add("..\\evil.json")), via_saving, ArchiveError, (SLIP,)),
    "zip-slip drive letter": FileCase(archive(_add("C:/evil.json")), via_saving, ArchiveError, ("'C:/evil.json'", SLIP)),
    "zip-slip, summary": FileCase(archive(_add("../evil.json")), via_cli_summary, LoadError, ("m.keras", SLIP)),
    "not a zip": FileCase(lambda d: _write(d, "m.keras", b"plain text"), via_saving, ArchiveError, ("m.keras", "not a `.keras` archive")),
    "empty": FileCase(lambda d: _write(d, "m.keras", b""), via_saving, ArchiveError, ("m.keras", "not a `.keras` archive")),
    "truncated": FileCase(lambda d: _write(d, "m.keras", archive(lambda m: m)(d).read_bytes()[:-100]), via_saving, ArchiveError, ("m.keras",)),
    "config.json missing": FileCase(archive(_drop("config.json")), via_saving, ArchiveError, ("has no config.json",)),
    "model.weights.h5 missing": FileCase(archive(_drop("model.weights.h5")), via_saving, ArchiveError, ("model.weights.h5",)),
    "config.json not JSON": FileCase(archive(_add("config.json", b"{nope")), via_saving, ArchiveError, ("config.json is not valid JSON",)),
    "config.json not UTF-8": FileCase(archive(_add("config.json", b"\xff\xfe{}")), via_saving, ArchiveError, ("config.json is not valid JSON",)),
    "config.json a list": FileCase(archive(_add("config.json", b"[1, 2]")), via_saving, ArchiveError, ("config.json should hold a JSON object, found list",)),
    "config.json nested 5,000 deep": FileCase(archive(_add("config.json", b"[" * 5000 + b"]" * 5000)), via_saving, ValueError, ("5,000 levels deep", "limit of 100")),
    "config nested 500 deep in a name": FileCase(archive(config(_nested)), via_saving, ValueError, ("levels", "limit of 100")),
    "metadata.json not JSON": FileCase(archive(_add("metadata.json", b"\x00\x01")), via_saving, ArchiveError, ("metadata.json is not valid JSON",)),
    "unknown class": FileCase(archive(config(_unknown_class)), via_saving, TypeError, ("m.keras: config.json", "NoSuchLayer")),
    "unknown class, summary": FileCase(archive(config(_unknown_class)), via_cli_summary, LoadError, ("m.keras", "NoSuchLayer")),
    "Lambda without safe_mode=False": FileCase(archive(config(_lambda)), via_saving, ValueError, ("m.keras: config.json", "Lambda", "safe_mode")),
    "huge declared input": FileCase(archive(config(_huge_input)), via_saving, MemoryLimitError, ("m.keras: config.json", "(1000000000000, 3)", "of memory available")),
    "huge declared units": FileCase(archive(config(_huge_units)), via_saving, MemoryLimitError, ("m.keras: config.json", "(3, 10000000000000)", "of memory available")),
    "huge declared input, summary": FileCase(archive(config(_huge_input)), via_cli_summary, LoadError, ("m.keras", "of memory available")),
    "h5 group missing": FileCase(archive(weights_member(lambda f: f.__delitem__("layers/dense_1"))), via_saving, WeightsFormatError, ("m.keras", "model.weights.h5", "'out'", "layers/dense_1")),
    "h5 variable missing": FileCase(archive(weights_member(lambda f: f.__delitem__("layers/dense_1/vars/1"))), via_saving, WeightsFormatError, ("'out'", "expected 2 variables")),
    "h5 extra variable": FileCase(archive(weights_member(lambda f: f.create_dataset("layers/dense_1/vars/2", data=np.zeros(2)))), via_saving, WeightsFormatError, ("'out'", "expected 2 variables")),
    "h5 wrong shape": FileCase(archive(weights_member(lambda f: _resize(f, "layers/dense_1/vars/0", (2, 3)))), via_saving, WeightsFormatError, ("'out'", "(3, 2)", "(2, 3)")),
    "h5 strings": FileCase(archive(weights_member(_strings)), via_saving, WeightsFormatError, ("'out'",)),
    "h5 soft link": FileCase(archive(weights_member(_soft_link)), via_saving, WeightsFormatError, ("layers/dense_1/vars/0 is a", "links are not followed")),
    "h5 external link": FileCase(archive(weights_member(_external_link)), via_saving, WeightsFormatError, ("layers/dense_1/vars/0 is a", "links are not followed")),
    "h5 not HDF5": FileCase(archive(_add("model.weights.h5", b"not hdf5")), via_saving, WeightsFormatError, ("model.weights.h5 is not a valid HDF5 file",)),
    "zip bomb config.json": FileCase(_declared_size("config.json", 2**32 - 1), via_saving, ArchiveError, ("config.json declares 4,294,967,295 bytes", "limit")),
    "zip bomb weights": FileCase(_declared_size("model.weights.h5", 2**32 - 1), via_saving, ArchiveError, ("model.weights.h5 declares 4,294,967,295 bytes", "decompression bomb")),
    "zip bomb, summary": FileCase(_declared_size("model.weights.h5", 2**32 - 1), via_cli_summary, LoadError, ("m.keras", "decompression bomb")),
}
# fmt: on


# -- .weights.h5 rows -------------------------------------------------------------------------------
def weights_file(
    change: Callable[[h5py.File], None] | None = None, data: bytes | None = None
) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        path = _write(d, "m.weights.h5", ORIGINALS["weights"] if data is None else data)
        if change is not None:
            with h5py.File(path, "r+") as file:
                change(file)
        return path

    return make


def via_load_weights(path: Path):
    return _model().load_weights(path)


# fmt: off
WEIGHTS = {
    "empty": FileCase(weights_file(data=b""), via_load_weights, WeightsFormatError, ("m.weights.h5",)),
    "text": FileCase(weights_file(data=b"not hdf5 at all"), via_load_weights, WeightsFormatError, ("m.weights.h5",)),
    "truncated": FileCase(lambda d: weights_file(data=ORIGINALS["weights"][:1500])(d), via_load_weights, WeightsFormatError, ("m.weights.h5",)),
    "group missing": FileCase(weights_file(lambda f: f.__delitem__("layers/dense")), via_load_weights, WeightsFormatError, ("'hidden'", "layers/dense")),
    "wrong shape": FileCase(weights_file(lambda f: _resize(f, "layers/dense/vars/0", (3, 4))), via_load_weights, WeightsFormatError, ("'hidden'", "(4, 3)", "(3, 4)")),
    "wrong dtype": FileCase(weights_file(lambda f: _resize(f, "layers/dense/vars/1", (3,), "complex64")), via_load_weights, WeightsFormatError, ("'hidden'", "complex64")),
    "soft link": FileCase(weights_file(_soft_link), via_load_weights, WeightsFormatError, ("layers/dense_1/vars/0 is a", "links are not followed")),
}
# fmt: on

FAMILIES = {"onnx": ONNX, "keras": KERAS, "weights": WEIGHTS}
CASES = [(family, name) for family, table in FAMILIES.items() for name in table]


@pytest.mark.parametrize("family, name", CASES, ids=[f"{f}-{n}".replace(" ", "_") for f, n in CASES])
def test_file_case(family, name, tmp_path):
    case = FAMILIES[family][name]
    path = case.make(tmp_path)
    before = files_under(tmp_path)
    with pytest.raises(case.error) as caught:
        case.load(path)
    message = " ".join(str(caught.value).split())
    for fragment in (f.replace("{d}", str(tmp_path)) for f in case.fragments):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not isinstance(caught.value, LEAKED_ERRORS), repr(caught.value)
    assert files_under(tmp_path) == before, "loading a bad file wrote something"


def test_the_unchanged_files_load(originals, tmp_path):
    """The rows' starting points are good files: each row's error is its own change's."""
    model = _model()
    onnx_path = _write(tmp_path, "m.onnx", originals["onnx"])
    assert load(onnx_path).onnx_model().graph.node
    assert importer.load(onnx_path).count_params() == model.count_params()
    ORIGINALS.update(originals)
    assert via_saving(archive(lambda m: m)(tmp_path)).count_params() == model.count_params()
    via_load_weights(weights_file()(tmp_path))
    assert external("w.bin")(tmp_path) and load(tmp_path / "model" / "m.onnx").onnx_model().graph.initializer


def test_extra_h5_groups_are_ignored_as_keras_does(originals, tmp_path):
    """Keras 3 loads a weights file with groups its model does not walk and ignores them; so does irtool."""
    ghost = weights_file(lambda f: f.create_dataset("layers/ghost/vars/0", data=np.zeros(2)))(tmp_path)
    source = _model()
    source.load_weights(_write(tmp_path, "plain.weights.h5", originals["weights"]))
    target = _model()
    target.load_weights(ghost)
    for got, want in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(got, want)
