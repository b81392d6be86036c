"""``irtool.loading``: model.py, .keras and .onnx sources -> ``LoadedModel``, and every way loading fails."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

import irtool as keras
from irtool import layers
from irtool.loading import (
    LoadedModel,
    LoadError,
    check_exportable,
    load,
    load_model,
    numpy_reference,
    pick_model,
    source_kind,
)
from irtool.runtime import check_parity, make_session

from ._model_sources import TINY, TWO_MODELS


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def _tiny_model():
    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, layers.Dense(3, name="out")(inputs), name="saved")


# -- the three kinds -----------------------------------------------------------------------------------
def test_source_kind_by_suffix():
    assert [source_kind(p) for p in ("m.py", "M.KERAS", "m.onnx", "build_it", "dir/m.txt")] == [
        "python",
        "keras",
        "onnx",
        "python",
        "python",
    ]
    with pytest.raises(LoadError, match=r"loading saved models \(.h5 files\) is not supported yet"):
        source_kind("m.h5")


def test_load_a_python_file(tmp_path):
    path = write(tmp_path, "tiny.py", TINY)
    loaded = load(path)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.path, loaded.kind, loaded.onnx, loaded.name) == (path, "python", None, "tiny")
    assert isinstance(loaded.model, keras.Model) and loaded.model.count_params() == 15
    assert loaded.input_names == ["x"] and loaded.output_names == ["out"]
    proto = loaded.onnx_model()
    assert proto is loaded.onnx_model()  # exported once
    assert loaded.onnx_model(opset=17).opset_import[0].version == 17
    session = make_session(loaded.onnx_bytes())
    (y,) = session.run(None, {"x": np.ones((2, 4), np.float32)})
    np.testing.assert_allclose(y, loaded.model.predict(np.ones((2, 4), np.float32), verbose=0), rtol=1e-6)


def test_load_a_keras_file(tmp_path):
    _tiny_model().save(tmp_path / "saved.keras")
    loaded = load(tmp_path / "saved.keras")
    assert (loaded.kind, loaded.name, loaded.onnx) == ("keras", "saved", None)
    assert loaded.model.optimizer is None  # loaded without its training configuration
    assert loaded.output_names == ["out"]
    assert load_model(tmp_path / "saved.keras").name == "saved"


def test_load_an_onnx_file(tmp_path):
    _tiny_model().export(tmp_path / "m.onnx")
    loaded = load(tmp_path / "m.onnx")
    assert (loaded.kind, loaded.model, loaded.name) == ("onnx", None, "m.onnx")
    assert isinstance(loaded.onnx, onnx.ModelProto)
    assert loaded.input_names == ["x"] and loaded.output_names == ["out"]
    assert loaded.onnx_model() is loaded.onnx
    assert loaded.onnx_bytes() == loaded.onnx.SerializeToString()
    with pytest.raises(LoadError, match="is already ONNX; it cannot be converted to opset 17"):
        loaded.onnx_model(opset=17)


def test_an_onnx_file_with_external_data_gets_its_weights_back(tmp_path):
    model = _tiny_model()
    proto = keras.onnx.to_onnx(model)
    onnx.save(proto, tmp_path / "big.onnx", save_as_external_data=True, location="big.data", size_threshold=0)
    loaded = load(tmp_path / "big.onnx")
    assert loaded.onnx.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL  # structure only
    (report,) = check_parity(loaded.onnx_bytes(), numpy_reference(model))
    assert report["ok"]


def test_load_model_refuses_onnx_files(tmp_path):
    _tiny_model().export(tmp_path / "m.onnx")
    with pytest.raises(LoadError, match=r"loading saved models \(.onnx files\) is not supported yet"):
        load_model(tmp_path / "m.onnx")
    with pytest.raises(LoadError, match=r"\(.onnx files\) is not supported yet"):
        load(tmp_path / "m.onnx", kinds=("python",))


# -- picking the model in a Python file ----------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [("first", "first"), ("alias", "second"), ("make", "made")])
def test_object_names_a_model_or_a_factory(name, expected, tmp_path):
    assert load(write(tmp_path, "two.py", TWO_MODELS), name).name == expected


@pytest.mark.parametrize("factory", ["build_model", "get_model"])
def test_factory_functions(factory, tmp_path):
    source = f"""
    import irtool as keras
    from irtool import layers

    def {factory}():
        inputs = keras.Input((4,))
        return keras.Model(inputs, layers.Dense(2)(inputs), name="built")
    """
    assert load_model(write(tmp_path, "f.py", source)).name == "built"


def test_the_only_model_and_the_variable_model_win():
    inputs = keras.Input((4,))
    a = keras.Model(inputs, layers.Dense(3)(inputs), name="a")
    b = keras.Model(inputs, layers.Dense(2)(inputs), name="b")
    assert pick_model({"net": a, "net_again": a}) is a
    assert pick_model({"model": b, "other": a}) is b
    assert pick_model({"__hidden": a, "net": b}) is b


def test_a_model_file_imports_its_neighbours_skips_main_and_restores_sys_path(tmp_path):
    write(tmp_path, "blocks.py", "UNITS = 7\n")
    source = write(
        tmp_path,
        "uses.py",
        "import blocks\n"
        + TINY.replace("Dense(3", "Dense(blocks.UNITS")
        + 'if __name__ == "__main__":\n    raise SystemExit("main block ran")\n',
    )
    before = list(sys.path)
    assert load_model(source).count_params() == 35
    assert sys.path == before


# -- errors --------------------------------------------------------------------------------------------
ERRORS = {
    "missing": ("missing.py", None, "no such file: "),
    "h5": ("m.h5", None, "loading saved models (.h5 files) is not supported yet"),
    "syntax": ("def broken(:\n", None, "syntax error in "),
    "raises": ("import irtool\nx = 1\ny = x / 0\n", None, ", line 3 raised ZeroDivisionError: division by zero"),
    "exits": ("import sys\nsys.exit(3)\n", None, "called sys.exit(3) while being loaded"),
    "no_model": ("x = 1\n", None, "no model found in "),
    "ambiguous": (TWO_MODELS, None, "defines several models (first, second); choose one with --object NAME"),
    "bad_object": (TWO_MODELS, "third", "defines no object named 'third' (models defined: first, second)"),
    "not_a_model": (TWO_MODELS, "count", "count in "),
    "returns_other": (TWO_MODELS, "not_a_model", "not_a_model() in "),
    "needs_args": (TWO_MODELS, "needs_args", "needs_args(units) in "),
    "factory_raises": ("def build_model():\n    raise RuntimeError('no data')\n", None, "raised RuntimeError: no data"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_python_file_errors_are_one_line(case, tmp_path):
    source, object_name, message = ERRORS[case]
    path = tmp_path / source if source.endswith((".py", ".h5")) else write(tmp_path, "model.py", source)
    with pytest.raises(LoadError) as caught:
        load(path, object_name)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_errors_keep_their_cause(tmp_path):
    with pytest.raises(LoadError) as caught:
        load(write(tmp_path, "model.py", "raise KeyError('k')\n"))
    assert isinstance(caught.value.__cause__, KeyError)


def test_a_directory_is_not_a_model_file(tmp_path):
    with pytest.raises(LoadError, match="is a directory; pass the Python file that builds the model"):
        load(tmp_path)


def test_keras_file_errors(tmp_path):
    with pytest.raises(LoadError, match="no such file: "):
        load(tmp_path / "none.keras")
    (tmp_path / "broken.keras").write_bytes(b"nope")
    with pytest.raises(LoadError, match="cannot load .*broken.keras: .*not a `.keras` archive"):
        load(tmp_path / "broken.keras")
    _tiny_model().save(tmp_path / "m.keras")
    with pytest.raises(LoadError, match="--object picks a model in a Python file; .* holds one saved model"):
        load(tmp_path / "m.keras", "model")


def test_onnx_file_errors(tmp_path):
    with pytest.raises(LoadError, match="no such file: "):
        load(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\xff\xff garbage")
    with pytest.raises(LoadError, match="bad.onnx is not a readable ONNX model") as caught:
        load(tmp_path / "bad.onnx")
    assert "\n" not in str(caught.value)
    _tiny_model().export(tmp_path / "m.onnx")
    with pytest.raises(LoadError, match="--object picks a model in a Python file; .* is an ONNX file"):
        load(tmp_path / "m.onnx", "model")


def test_only_built_functional_models_are_exportable(tmp_path):
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(LoadError, match="is a subclassed Sub; only functional and Sequential models can be exported"):
        check_exportable(Sub(name="sub"))
    unbuilt = keras.Sequential([layers.Dense(2)], name="seq")
    with pytest.raises(LoadError, match="model 'seq' is not built yet"):
        LoadedModel(tmp_path / "m.py", "python", model=unbuilt).onnx_bytes()


# -- the NumPy reference -------------------------------------------------------------------------------
def test_numpy_reference_flattens_dict_and_list_models_for_check_parity():
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    joined = layers.concatenate([a, b])
    model = keras.Model({"a": a, "b": b}, {"sum": layers.Dense(1, name="sum")(joined), "all": joined})
    reports = check_parity(keras.onnx.to_onnx(model), numpy_reference(model))
    assert len(reports) == 2 and all(r["ok"] for r in reports)
    with pytest.raises(ValueError, match="has 2 inputs, but 1 arrays were given"):
        numpy_reference(model)([np.zeros((1, 3), np.float32)])
