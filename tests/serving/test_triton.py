"""Triton model repositories (``irtool.serving.triton``), checked against Triton's own ``ModelConfig``
protobuf (``tritonclient.grpc.model_config_pb2``, parsed with protobuf's text_format) and ONNX Runtime's
view of the written file, and served back by ``irtool serve``'s sources."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import irtool
from irtool.loading import LoadError
from irtool.runtime import Session
from irtool.serving import kserve, sources, triton

from .conftest import mlp

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")
triton_utils = pytest.importorskip("tritonclient.utils")


def parse(path) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(open(path, encoding="utf-8").read(), config)
    return config


def token_model():
    """int64 tokens of any length -> embedding -> mean -> 2 scores, and the pooled features."""
    tokens = irtool.Input((None,), dtype="int64", name="tokens")
    pooled = irtool.layers.GlobalAveragePooling1D(name="pooled")(irtool.layers.Embedding(50, 4)(tokens))
    scores = irtool.layers.Dense(2, name="scores")(pooled)
    return irtool.Model(tokens, [scores, pooled], name="tokens")


def scalar_model():
    """One number per row in, one number per row out: rank-1 tensors, [batch] only."""
    x = irtool.Input((), name="x")
    y = irtool.layers.Reshape((1,))(x)
    y = irtool.layers.Dense(1, name="dense")(y)
    return irtool.Model(x, irtool.layers.Reshape(())(y), name="scalar")


def fixed_batch_model():
    x = irtool.Input(batch_shape=(4, 3), name="x")
    return irtool.Model(x, irtool.layers.Dense(2, name="out")(x), name="fixed")


def expected_entries(infos, max_batch_size):
    """What the config must say for ONNX Runtime's view of the tensors: TYPE_<tritonclient's dtype
    name>, -1 for each dynamic dim, the batch dim dropped when batching, [] as [1] reshaped to []."""
    entries = []
    for info in infos:
        dims = [d if isinstance(d, int) else -1 for d in info.shape]
        if max_batch_size > 0:
            assert dims[0] == -1
            dims = dims[1:]
        dtype = np.dtype({"tensor(float)": np.float32, "tensor(int64)": np.int64}[info.type])
        entries.append((info.name, "TYPE_" + triton_utils.np_to_triton_dtype(dtype), dims or [1], not dims))
    return entries


def config_entries(tensors):
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims), t.HasField("reshape")) for t in tensors]


@pytest.mark.parametrize(
    "build, max_batch_size",
    [(mlp, 0), (mlp, 16), (token_model, 0), (token_model, 4), (scalar_model, 8), (scalar_model, 0)],
)
def test_written_config_is_a_triton_model_config_describing_the_onnx_file(build, max_batch_size, tmp_path):
    model = build()
    written = triton.write_model(
        model.to_onnx(),
        tmp_path,
        "net",
        3,
        max_batch_size=max_batch_size,
        dynamic_batching=max_batch_size > 0,
        max_queue_delay_us=250,
        instances=2,
    )
    assert written.config == tmp_path / "net" / "config.pbtxt"
    assert written.model == tmp_path / "net" / "3" / "model.onnx" and not written.external_data
    config = parse(written.config)
    assert config.name == "net" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == max_batch_size
    session = ort.InferenceSession(str(written.model), providers=["CPUExecutionProvider"])
    assert config_entries(config.input) == expected_entries(session.get_inputs(), max_batch_size)
    assert config_entries(config.output) == expected_entries(session.get_outputs(), max_batch_size)
    for tensor in [*config.input, *config.output]:
        assert not tensor.HasField("reshape") or list(tensor.reshape.shape) == []
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
    assert config.HasField("dynamic_batching") == (max_batch_size > 0)
    if max_batch_size:
        assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert triton.check_config(config, onnx.load(written.model)) == []


def test_gpu_instances_and_no_dynamic_batching(tmp_path):
    written = triton.write_model(mlp().to_onnx(), tmp_path, "mlp", max_batch_size=8, instances=3, gpu=True)
    config = parse(written.config)
    assert [(g.count, g.kind) for g in config.instance_group] == [(3, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    assert config.max_batch_size == 8 and not config.HasField("dynamic_batching")
    options = triton.serving_options(config, written.config, "mlp")
    # max_batch_size alone caps a request's rows in Triton; only dynamic_batching stacks requests
    assert options == triton.ServingOptions(max_batch_size=0, max_queue_delay_us=None, instances=3)


def test_names_are_quoted_as_protobuf_text(tmp_path):
    odd = 'in "quoted" \\ back\nslash, ünïcode/x:0'
    entry = triton.TensorConfig(odd, "TYPE_FP32", (2, -1))
    text = triton.config_text('m"1', [entry], [entry])
    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    assert config.name == 'm"1' and config.input[0].name == odd and list(config.output[0].dims) == [2, -1]


def test_a_static_first_dim_is_refused_for_batching_and_nothing_is_written(tmp_path):
    proto = fixed_batch_model().to_onnx()
    with pytest.raises(triton.TritonError) as error:
        triton.write_model(proto, tmp_path / "repo", "fixed", max_batch_size=4)
    message = str(error.value)
    assert "--max-batch-size 4: input 'x' of model 'fixed' has shape [4, 3], whose first dim is not dynamic" in message
    assert "--max-batch-size 0" in message
    assert not (tmp_path / "repo").exists()
    written = triton.write_model(proto, tmp_path / "repo", "fixed", max_batch_size=0)
    config = parse(written.config)
    assert [list(t.dims) for t in config.input] == [[4, 3]] and [list(t.dims) for t in config.output] == [[4, 2]]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dynamic_batching": True}, "--dynamic-batching needs --max-batch-size > 0"),
        ({"version": 0}, "--version: expected a positive integer, received 0"),
        ({"instances": 0}, "--instances: expected a positive integer"),
        ({"name": "a/b"}, "--name: a model name is one folder name"),
        ({"name": ".hidden"}, "--name: a model name is one folder name"),
    ],
)
def test_bad_options_are_refused_before_writing(options, message, tmp_path):
    arguments = {"name": "mlp", **options}
    name = arguments.pop("name")
    with pytest.raises(triton.TritonError, match=message.replace("+", r"\+")):
        triton.write_model(mlp().to_onnx(), tmp_path / "repo", name, **arguments)
    assert not (tmp_path / "repo").exists()


def test_external_data_goes_in_a_model_onnx_folder_that_onnx_runtime_loads(tmp_path, monkeypatch):
    """Over the threshold (protobuf's 2 GiB; lowered here) the version holds a folder model.onnx/ with
    the graph and its weights, the multi-file layout Triton documents."""
    model = mlp()
    proto = model.to_onnx()
    written = triton.write_model(proto, tmp_path, "big", external_data_threshold=10_000)
    folder = tmp_path / "big" / "1" / "model.onnx"
    assert written.external_data and written.model == folder / "model.onnx"
    assert sorted(os.listdir(folder)) == ["model.onnx", "model.onnx.data"]
    # the two kernels over 1 KiB move (as onnx.save_model's size_threshold does); biases stay inline
    assert os.path.getsize(folder / "model.onnx.data") == (784 * 32 + 32 * 10) * 4
    assert os.path.getsize(folder / "model.onnx") < 10_000
    onnx.checker.check_model(str(written.model), full_check=True)
    assert len(proto.graph.initializer[0].raw_data) > 0, "the caller's proto keeps its weights"
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    want = Session(proto.SerializeToString()).run({"pixels": x})
    monkeypatch.chdir(tmp_path.parent)  # ONNX Runtime finds the data next to the graph, from any working folder
    got = Session(str(written.model)).run({"pixels": x})
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_a_failing_commit_leaves_the_repository_as_it_was(tmp_path):
    proto = mlp().to_onnx()
    triton.write_model(proto, tmp_path, "mlp", 1, max_batch_size=8)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    seen = []

    def refuse(path):
        seen.append(path)
        assert onnx.load(path).graph.output[0].name == "probs"  # the staged file is whole
        raise RuntimeError("check failed")

    for version, name in ((2, "mlp"), (1, "other")):
        with pytest.raises(RuntimeError, match="check failed"):
            triton.write_model(proto, tmp_path, name, version, before_commit=refuse)
    with pytest.raises(RuntimeError, match="check failed"):
        triton.write_model(proto, tmp_path / "new" / "repo", "mlp", before_commit=refuse)
    assert len(seen) == 3
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_a_new_version_joins_the_model_and_an_existing_one_is_refused(tmp_path):
    proto = mlp().to_onnx()
    triton.write_model(proto, tmp_path, "mlp", 1)
    written = triton.write_model(proto, tmp_path, "mlp", 2, max_batch_size=4, dynamic_batching=True)
    assert sorted(os.listdir(tmp_path / "mlp")) == ["1", "2", "config.pbtxt"]
    assert parse(written.config).max_batch_size == 4
    with pytest.raises(triton.TritonError, match=r"mlp/2 already exists: choose another --version"):
        triton.write_model(proto, tmp_path, "mlp", 2)


def test_reading_a_config_without_tritonclient_says_what_to_install(tmp_path, monkeypatch):
    written = triton.write_model(mlp().to_onnx(), tmp_path, "mlp")
    monkeypatch.setattr(triton, "model_config_pb2", None)
    with pytest.raises(triton.TritonError, match=r"needs tritonclient\[grpc\].*pip install 'irtool\[triton\]'"):
        triton.read_config(written.config)


def test_check_config_names_each_disagreement(tmp_path):
    written = triton.write_model(mlp().to_onnx(), tmp_path, "mlp", max_batch_size=8)
    text = written.config.read_text().replace("TYPE_FP32", "TYPE_FP16", 1).replace("[ 10 ]", "[ 11 ]")
    text = text.replace('name: "aux"', 'name: "extra"')
    written.config.write_text(text)
    problems = triton.check_config(parse(written.config), onnx.load(written.model))
    assert problems == [
        "input 'pixels': config TYPE_FP16, model TYPE_FP32",
        "output 'probs': config dims [11], model [10]",
        "output 'extra' is not in the model",
        "output 'aux' of the model is missing from the config",
    ]


def test_sources_apply_the_config_and_options_override_it(tmp_path):
    proto = mlp().to_onnx()
    triton.write_model(proto, tmp_path, "mlp", 1)
    # the config is the newest export's: it now batches both versions
    triton.write_model(proto, tmp_path, "mlp", 2, max_batch_size=8, dynamic_batching=True, max_queue_delay_us=500)
    triton.write_model(proto, tmp_path, "big", instances=2, external_data_threshold=0)
    served = {(m.name, m.version): m for m in sources.served_models([str(tmp_path)])}
    # Triton's default version_policy serves the latest version only
    assert sorted(served) == [("big", "1"), ("mlp", "2")]
    assert (served["mlp", "2"].max_batch_size, served["mlp", "2"].max_queue_delay_us) == (8, 500)
    assert len(served["big", "1"].sessions) == 2 and served["big", "1"].max_batch_size == 0
    x = np.random.default_rng(1).random((2, 784), dtype=np.float32)
    want = Session(proto.SerializeToString()).run({"pixels": x})["probs"]
    np.testing.assert_allclose(served["big", "1"].session.run({"pixels": x})["probs"], want, rtol=1e-6)
    overridden = sources.served_models([str(tmp_path / "mlp")], max_batch_size=2, instances=3, max_queue_delay_us=0)
    assert {(m.max_batch_size, m.max_queue_delay_us, len(m.sessions)) for m in overridden} == {(2, 0, 3)}


@pytest.mark.parametrize(
    "policy, versions",
    [("", ["3"]), ("latest { num_versions: 2 }", ["2", "3"]), ("all { }", ["1", "2", "3"]),
     ("specific { versions: [ 1, 3, 9 ] }", ["1", "3"])],
)  # fmt: skip
def test_sources_serve_the_versions_triton_would(policy, versions, tmp_path):
    proto = mlp().to_onnx()
    for version in (1, 2, 3):
        written = triton.write_model(proto, tmp_path, "mlp", version)
    written.config.write_text(written.config.read_text() + (f"version_policy {{ {policy} }}\n" if policy else ""))
    assert [m.version for m in sources.served_models([str(tmp_path)])] == versions


def test_sources_refuse_a_config_that_triton_would_refuse(tmp_path):
    written = triton.write_model(mlp().to_onnx(), tmp_path, "mlp", max_batch_size=8)
    config = written.config.read_text()
    written.config.write_text(config.replace("[ 784 ]", "[ 1, 784 ]"))
    with pytest.raises(LoadError, match=r"config.pbtxt does not describe version 1 .*input 'pixels': config dims"):
        sources.served_models([str(tmp_path)])
    written.config.write_text(config.replace('name: "mlp"', 'name: "other"'))
    with pytest.raises(LoadError, match="name 'other' differs from its folder 'mlp'"):
        sources.served_models([str(tmp_path)])
    written.config.write_text(config.replace("max_batch_size", "max_batch_sise"))
    with pytest.raises(LoadError, match=r"not a Triton model config: 3:1 : .*max_batch_sise"):
        sources.served_models([str(tmp_path)])


def test_kserve_inference_service_has_the_fields_kserve_requires():
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(kserve.to_yaml(kserve.inference_service("mnist_MLP.v2", "s3://bucket/repo", gpu=True)))
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert manifest["metadata"] == {"name": "mnist-mlp-v2"}
    assert manifest["spec"]["predictor"]["model"] == {
        "modelFormat": {"name": "triton"},
        "runtime": "kserve-tritonserver",
        "protocolVersion": "v2",
        "storageUri": "s3://bucket/repo",
        "resources": {"limits": {"nvidia.com/gpu": 1}},
    }
    with pytest.raises(ValueError, match="--storage-uri: expected a URI"):
        kserve.inference_service("m", "repo")
