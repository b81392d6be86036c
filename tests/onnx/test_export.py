"""Properties of exported ONNX files: versions, names, dims, initializers, value_info,
determinism, atomic writes and the checker."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

import irtool
import irtool as keras
import irtool.onnx.export as export_module
from irtool import layers, ops

from ..conftest import assert_onnx_parity, run_onnx

ROOT = Path(__file__).resolve().parents[2]

# Built the same way here and in a subprocess (after clear_session + set_random_seed(1234),
# which the autouse fixture also does).
MODEL_SOURCE = textwrap.dedent(
    """
    import irtool as keras
    from irtool import layers, ops

    def build_model():
        a = keras.Input(shape=(6,), name="features")
        b = keras.Input(shape=(None, 6))
        shared = layers.Dense(4, activation="relu", name="shared")
        x = shared(a)
        y = shared(ops.mean(b, axis=1))
        z = layers.Concatenate(name="concat")([x, y, ops.max(b, axis=1)])
        z = layers.Dense(3, activation="softmax", name="head")(z)
        extra = layers.Dense(2, activation="gelu")(layers.Add()([x, y]))
        return keras.Model([a, b], [z, extra], name="two_heads")
    """
)
_namespace: dict = {}
exec(MODEL_SOURCE, _namespace)
build_model = _namespace["build_model"]


def _feeds(batch=3, length=5):
    rng = np.random.default_rng(7)
    return [rng.normal(size=(batch, 6)).astype("float32"), rng.normal(size=(batch, length, 6)).astype("float32")]


def _dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else d.dim_value if d.HasField("dim_value") else None)
    return out


@pytest.fixture
def model():
    return build_model()


@pytest.fixture
def proto(model):
    return irtool.onnx.to_onnx(model)


def test_checker_full_check_and_parity(model, proto):
    onnx.checker.check_model(proto, full_check=True)
    assert_onnx_parity(model, _feeds())
    assert_onnx_parity(model, _feeds(batch=1, length=2))


@pytest.mark.parametrize("opset", [13, 15, 17, 18, 19, 20, 21])
def test_ir_version_is_the_minimum_for_the_opset(model, opset):
    proto = irtool.onnx.to_onnx(model, opset=opset)
    opsets = [helper_id for helper_id in proto.opset_import]
    assert [(o.domain, o.version) for o in opsets] == [("", opset)]
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)


def test_default_opset_21_is_ir_10(proto):
    assert irtool.onnx.default_opset() == 21
    assert proto.opset_import[0].version == 21
    assert proto.ir_version == 10


def test_producer(proto):
    assert proto.producer_name == "irtool"
    assert proto.producer_version == irtool.__version__
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["irtool.model_name"] == "two_heads"
    assert proto.graph.name == "two_heads"


def test_input_names_are_keras_tensor_names(model, proto):
    names = [i.name for i in proto.graph.input]
    assert names == [t.name for t in model.inputs]
    assert names[0] == "features"
    assert names[1].startswith("keras_tensor")


def test_output_names_are_output_layer_names(model, proto):
    assert [o.name for o in proto.graph.output] == list(model.output_names)
    assert proto.graph.output[0].name == "head"
    assert proto.graph.output[1].name.startswith("dense")


def test_batch_and_unknown_dims_are_named(proto):
    features, seq = proto.graph.input
    assert _dims(features) == ["batch", 6]
    dims = _dims(seq)
    assert dims[0] == "batch" and dims[2] == 6
    assert isinstance(dims[1], str) and dims[1] and dims[1] != "batch"
    for out in proto.graph.output:
        assert _dims(out)[0] == "batch"
    assert _dims(proto.graph.output[0])[1:] == [3]
    assert _dims(proto.graph.output[1])[1:] == [2]


def test_distinct_unknown_dims_get_distinct_names():
    a = keras.Input(shape=(None, None, 3))
    b = keras.Input(shape=(None, 3))
    out = ops.sum(a, axis=(1, 2)) + ops.sum(b, axis=1)
    proto = irtool.onnx.to_onnx(keras.Model([a, b], out))
    params = [d for i in proto.graph.input for d in _dims(i) if isinstance(d, str) and d != "batch"]
    assert len(params) == len(set(params)) == 3


def test_shared_layer_weights_stored_once(model, proto):
    names = [t.name for t in proto.graph.initializer]
    assert len(names) == len(set(names))
    weights = [n for n in names if n.startswith("shared/")]
    assert sorted(weights) == ["shared/bias", "shared/kernel"]
    kernel = next(t for t in proto.graph.initializer if t.name == "shared/kernel")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(kernel), model.get_layer("shared").kernel.numpy())
    # Both calls of the shared layer read the one kernel.
    users = [n for n in proto.graph.node if "shared/kernel" in n.input]
    assert len(users) == 2
    n_weights = sum(int(np.prod(w.shape)) for w in model.weights)
    n_stored = sum(int(np.prod(t.dims)) for t in proto.graph.initializer if t.name in {w.path for w in model.weights})
    assert n_stored == n_weights


def test_node_names_carry_the_layer_name(proto):
    names = [n.name for n in proto.graph.node]
    assert len(names) == len(set(names))
    assert all(names)
    shared = [n for n in names if n.startswith("shared")]
    assert any(n.startswith("shared/") for n in shared)
    assert {n.split("/")[0] for n in shared} >= {"shared"}
    assert any(n.startswith("head/") for n in names)
    assert any(n.startswith("concat/") for n in names)
    dense = next(n for n in proto.graph.node if n.op_type in ("MatMul", "Gemm") and "head/kernel" in n.input)
    assert dense.name.startswith("head/")


def test_dense_node_names_start_with_dense():
    x = keras.Input(shape=(3,))
    proto = irtool.onnx.to_onnx(keras.Model(x, layers.Dense(2)(x)))
    assert all(n.name.startswith("dense/") for n in proto.graph.node)


def test_value_info_for_intermediates(proto):
    graph_io = {v.name for v in list(proto.graph.input) + list(proto.graph.output)}
    inits = {t.name for t in proto.graph.initializer}
    produced = {o for n in proto.graph.node for o in n.output} - graph_io
    info = {v.name: v for v in proto.graph.value_info}
    assert produced and produced <= set(info)
    for name in produced:
        assert info[name].type.tensor_type.elem_type != 0
        assert info[name].type.tensor_type.HasField("shape")
    assert not set(info) & inits


def test_exported_bytes_are_deterministic(model, tmp_path):
    first = irtool.onnx.to_onnx(model).SerializeToString(deterministic=True)
    second = irtool.onnx.to_onnx(model).SerializeToString(deterministic=True)
    assert first == second
    model.export(tmp_path / "a.onnx")
    model.export(tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def _export_in_subprocess(path: Path, hashseed: str) -> bytes:
    script = MODEL_SOURCE + textwrap.dedent(
        f"""
        import irtool
        irtool.backend.clear_session()
        irtool.utils.set_random_seed(1234)
        build_model().export({str(path)!r})
        """
    )
    env = dict(os.environ, PYTHONHASHSEED=hashseed, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=str(ROOT), timeout=120)
    return path.read_bytes()


def test_exported_bytes_do_not_depend_on_the_hash_seed(model, tmp_path):
    model.export(tmp_path / "here.onnx")
    here = (tmp_path / "here.onnx").read_bytes()
    one = _export_in_subprocess(tmp_path / "one.onnx", "1")
    two = _export_in_subprocess(tmp_path / "two.onnx", "987654")
    assert hashlib.sha256(one).hexdigest() == hashlib.sha256(two).hexdigest()
    assert one == here


def test_export_writes_a_valid_file(model, tmp_path):
    path = tmp_path / "model.onnx"
    returned = model.export(path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString(deterministic=True) == returned.SerializeToString(deterministic=True)
    feeds = _feeds()
    got = run_onnx(loaded, {i.name: f for i, f in zip(loaded.graph.input, feeds)})
    for g, w in zip(got, model.predict(feeds, verbose=0)):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)
    assert os.listdir(tmp_path) == ["model.onnx"]


class _FailingFile:
    """Writes half of what it is given, then fails (a full disk, say)."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError("No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_failed_write_leaves_no_file_and_no_temp_file(model, tmp_path, monkeypatch):
    real_open = open
    monkeypatch.setattr(
        export_module, "open", lambda path, mode="r": _FailingFile(real_open(path, mode)), raising=False
    )
    path = tmp_path / "model.onnx"
    with pytest.raises(OSError, match="No space left"):
        model.export(path)
    assert os.listdir(tmp_path) == []


def test_failed_serialization_keeps_the_old_file(model, tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    model.export(path)
    before = path.read_bytes()

    class Exploding:
        def SerializeToString(self, deterministic=False):
            raise RuntimeError("serialization failed")

    with pytest.raises(RuntimeError, match="serialization failed"):
        irtool.onnx.save_onnx(Exploding(), path, external_data=False)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.onnx"]

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(export_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        model.export(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_outputs_that_are_inputs_or_repeated_get_their_own_names():
    x = keras.Input(shape=(3,), name="x")
    y = layers.Dense(2, name="proj")(x)
    model = keras.Model(x, [y, x, y])
    proto = assert_onnx_parity(model, np.ones((2, 3), "float32"))
    names = [o.name for o in proto.graph.output]
    assert len(set(names)) == 3
    assert names[0] == "proj"
    onnx.checker.check_model(proto, full_check=True)


def test_export_rejects_unknown_format(model, tmp_path):
    with pytest.raises(ValueError):
        model.export(tmp_path / "m.tf", format="tf_saved_model")


def test_scalar_variable_keeps_rank_zero():
    scale = keras.Variable(np.float32(2.0), name="scale")
    x = keras.Input(shape=(3,))
    model = keras.Model(x, ops.sum(x, axis=1) * scale)
    proto = assert_onnx_parity(model, np.ones((2, 3), "float32"))
    assert list(next(t for t in proto.graph.initializer if t.name == "scale").dims) == []


def test_scalar_constants_keep_rank_zero():
    # Regression: LoweringContext.const made 0-d constants 1-d (np.ascontiguousarray).
    x = keras.Input(shape=(4, 3))
    model = keras.Model(x, ops.take(x, np.array(1, "int32"), axis=1) + ops.sum(x))
    proto = assert_onnx_parity(model, np.arange(24, dtype="float32").reshape(2, 4, 3))
    scalars = [t for t in proto.graph.initializer if not t.dims]
    assert scalars
