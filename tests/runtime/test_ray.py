"""`irtool.runtime.ray` on a real local Ray cluster: a feature-extraction submodel over 20,000 rows."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import irtool
from irtool.runtime import Session
from irtool.runtime.ray import OnnxBatchPredictor, map_batches, onnx_bytes

ROWS = 20_000


def classifier():
    """A small MLP, 64 -> 32 relu ('hidden') -> 10 softmax, fixed weights."""
    inputs = irtool.Input((64,), name="pixels")
    hidden = irtool.layers.Dense(32, activation="relu", name="hidden")(inputs)
    outputs = irtool.layers.Dense(10, activation="softmax", name="probs")(hidden)
    model = irtool.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.2, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def features():
    """The classifier cut at its hidden layer with irtool's submodel API (shared weights)."""
    model = classifier()
    return irtool.Model(model.input, model.get_layer("hidden").output, name="features")


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(1).random((ROWS, 64), dtype=np.float32)


@pytest.fixture(scope="module")
def ray_data():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.data
    ray.shutdown()


class PredictorWithPid(OnnxBatchPredictor):
    """The documented callable class, plus the actor's process id per row."""

    def __call__(self, batch):
        out = super().__call__(batch)
        out["pid"] = np.full(len(out["hidden"]), os.getpid())
        return out


def test_two_actors_give_the_in_process_result_in_order(ray_data, features, data):
    ids = np.arange(ROWS, dtype=np.int64)
    # 8 blocks, so the two actors share the work (and could finish out of turn).
    dataset = ray_data.from_items([{"id": int(i), "data": row} for i, row in zip(ids, data)]).repartition(8)
    out = map_batches(
        dataset, features, columns={"pixels": "data"}, keep=["id"], batch_size=1000, concurrency=2, num_cpus=0.5
    )
    batches = list(out.iter_batches(batch_size=None, batch_format="numpy"))
    got = np.concatenate([b["hidden"] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b["id"] for b in batches]), ids)  # in order
    # In-process: the same ONNX in one Session, in one loop over the rows.
    session = Session(onnx_bytes(features))
    want = np.concatenate([session.run_list(data[i : i + 1000])[0] for i in range(0, ROWS, 1000)])
    np.testing.assert_array_equal(got, want)
    # and, independently of ONNX Runtime, irtool's NumPy executor.
    np.testing.assert_allclose(got, features.predict(data, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_callable_class_runs_one_session_per_actor(ray_data, features, data):
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import the tests
    dataset = ray_data.from_numpy(data[:4000]).repartition(8)
    out = dataset.map_batches(
        PredictorWithPid,
        fn_constructor_kwargs={"model": onnx_bytes(features), "columns": {"pixels": "data"}},
        batch_format="numpy",
        batch_size=500,
        concurrency=2,
        num_cpus=0.5,
    )
    rows = out.to_pandas()
    assert rows["pid"].nunique() == 2 and os.getpid() not in set(rows["pid"])
    got = np.sort(np.stack(rows["hidden"].to_numpy()), axis=0)
    np.testing.assert_array_equal(got, np.sort(Session(onnx_bytes(features)).run_list(data[:4000])[0], axis=0))


def test_a_missing_column_names_what_the_model_reads(features):
    predictor = OnnxBatchPredictor(onnx_bytes(features))
    with pytest.raises(KeyError, match=r"no column 'pixels' \(columns: \['data'\]\).*columns=\{input name: column\}"):
        predictor({"data": np.zeros((2, 64), np.float32)})


def test_model_files_other_than_onnx_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"expected an \.onnx file, received '.*model\.keras'.*irtool\.loading"):
        onnx_bytes(tmp_path / "model.keras")


def test_the_image_feature_example(ray_data):
    from examples.ray_features import build_models, extract_features, synthetic_images

    images, _ = synthetic_images(1200)
    features = extract_features(images, concurrency=2, batch_size=200)
    _, extractor = build_models()
    np.testing.assert_array_equal(features, Session(onnx_bytes(extractor)).run_list(images)[0])
    np.testing.assert_allclose(features, extractor.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def test_irtool_never_imports_ray():
    code = "import sys, irtool, irtool.cli, irtool.serving, irtool.runtime.ray; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
