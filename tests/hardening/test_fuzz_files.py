"""Fuzzing: byte mutations and truncations of valid ``.onnx`` and ``.keras`` files never raise
anything but irtool's own errors (``matrix.OWN_ERRORS``: ``ValueError``/``TypeError``/``OSError``
subclasses and ``LoadError``, each with a message), and never ``KeyError``, ``IndexError``,
``RecursionError``, ``zipfile.BadZipFile``, protobuf's ``DecodeError`` or h5py's own types.

Hypothesis is bounded (a few dozen examples each, ``derandomize=True``) so CI stays fast and
deterministic. ``.keras`` files are fuzzed twice: as whole files (the zip's CRCs catch most
changes) and member by member, re-zipped with valid CRCs, so the mutations reach the JSON and
HDF5 readers behind the zip layer. ONNX files go through ``irtool.loading`` (what the CLI reads)
and ``irtool.importer.load``; ONNX Runtime is left out, a native crash there would take the test
process with it.
"""

from __future__ import annotations

import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irtool
from irtool import importer, layers, loading, saving

from .matrix import OWN_ERRORS, check_own_error

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("fuzz")
    inputs = irtool.Input((4,), name="x")
    hidden = layers.Dense(3, activation="relu", name="hidden")(inputs)
    model = irtool.Model(inputs, layers.Dense(2, name="out")(hidden), name="m")
    model.export(folder / "m.onnx")
    model.save(folder / "m.keras")
    with zipfile.ZipFile(folder / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    return {"onnx": (folder / "m.onnx").read_bytes(), "keras": (folder / "m.keras").read_bytes(), "members": members}


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` truncated, with bytes overwritten, or with a run of bytes zeroed or removed."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "zero", "remove"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    out = bytearray(data)
    if kind == "overwrite":
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    start = draw(st.integers(0, len(out) - 1))
    length = draw(st.integers(1, 64))
    if kind == "zero":
        out[start : start + length] = bytes(len(out[start : start + length]))
    else:
        del out[start : start + length]
    return bytes(out)


@settings(SETTINGS, max_examples=150)
@given(data=st.data())
def test_mutated_onnx_files(good, tmp_path, data):
    path = tmp_path / "m.onnx"
    path.write_bytes(data.draw(mutated(good["onnx"])))
    for entry_point in (lambda: loading.load(path).onnx_model(), lambda: importer.load(path)):
        try:
            entry_point()  # a mutation that keeps the file valid (a changed weight) is fine
        except OWN_ERRORS as error:
            check_own_error(error)


@SETTINGS
@given(data=st.data())
def test_mutated_keras_files(good, tmp_path, data):
    path = tmp_path / "m.keras"
    path.write_bytes(data.draw(mutated(good["keras"])))
    try:
        saving.load_model(path, compile=False)
    except OWN_ERRORS as error:
        check_own_error(error)


@settings(SETTINGS, max_examples=60)
@given(data=st.data(), member=st.sampled_from(["config.json", "metadata.json", "model.weights.h5"]))
def test_mutated_keras_members(good, tmp_path, data, member):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in good["members"].items():
            archive.writestr(name, data.draw(mutated(content)) if name == member else content)
    try:
        saving.load_model(path, compile=False)
    except OWN_ERRORS as error:
        check_own_error(error)
