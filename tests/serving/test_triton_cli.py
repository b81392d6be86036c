"""``irtool export --triton-repo`` as a user runs it, then ``irtool serve`` of the written repository
driven by the official Triton client; the configs are parsed with Triton's ``ModelConfig``."""

from __future__ import annotations

import numpy as np
import pytest

import irtool
from irtool.cli import main
from irtool.runtime import Session

from .conftest import mlp
from .test_serve_cli import ServeProcess

httpclient = pytest.importorskip("tritonclient.http")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path):
    config = model_config_pb2.ModelConfig()
    text_format.Parse(path.read_text(encoding="utf-8"), config)
    return config


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton_cli")
    mlp().save(str(folder / "mlp.keras"))
    x = irtool.Input(batch_shape=(2, 3), name="x")
    irtool.Model(x, irtool.layers.Dense(2)(x)).save(str(folder / "fixed.keras"))
    return folder


def test_export_a_repository_then_serve_it_with_its_config(saved, tmp_path, capsys):
    repo, manifest = tmp_path / "repo", tmp_path / "isvc.yaml"
    source = str(saved / "mlp.keras")
    common = ["--triton-repo", str(repo), "--check"]
    batching = ["--max-batch-size", "8", "--dynamic-batching", "--max-queue-delay-us", "100", "--instances", "2"]
    assert main(["export", source, *common, "--name", "mnist", *batching]) == 0
    assert main(["export", source, *common, "--name", "plain", "--version", "2", "--kserve-yaml", str(manifest),
                 "--storage-uri", "gs://bucket/repo"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"-> {repo / 'mnist' / '1' / 'model.onnx'}, config {repo / 'mnist' / 'config.pbtxt'}" in out
    assert "check: ONNX Runtime agrees with NumPy on 2 outputs" in out
    assert "KServe InferenceService 'plain'" in out and 'storageUri: "gs://bucket/repo"' in manifest.read_text()
    mnist, plain = parse(repo / "mnist" / "config.pbtxt"), parse(repo / "plain" / "config.pbtxt")
    assert (mnist.max_batch_size, mnist.dynamic_batching.max_queue_delay_microseconds) == (8, 100)
    assert [list(t.dims) for t in mnist.input] == [[784]] and [list(t.dims) for t in mnist.output] == [[10], [3]]
    assert [list(t.dims) for t in plain.input] == [[-1, 784]] and not plain.HasField("dynamic_batching")

    server = ServeProcess(repo)
    url = server.wait_serving()
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    want = Session(mlp().to_onnx().SerializeToString()).run({"pixels": x})
    client = httpclient.InferenceServerClient(url)
    for model, version in [("mnist", "1"), ("plain", "2"), ("plain", "")]:
        tensor = httpclient.InferInput("pixels", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(model, [tensor], model_version=version)
        for name in ("probs", "aux"):
            np.testing.assert_allclose(result.as_numpy(name), want[name], rtol=1e-5, atol=1e-7)
    assert client.get_model_metadata("plain")["versions"] == ["2"]
    assert server.stop() == 0
    lines = "\n".join(server.lines)
    assert (
        "model 'mnist' version 1: 2 instance(s) on CPUExecutionProvider, batching up to 8 rows, 100 us delay" in lines
    )
    assert "model 'plain' version 2: 1 instance(s) on CPUExecutionProvider, no batching" in lines


def test_a_static_batch_dim_is_refused_in_one_line_and_nothing_is_written(saved, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert main(["export", str(saved / "fixed.keras"), "--triton-repo", str(repo), "--max-batch-size", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("irtool: error: --max-batch-size 4: input 'x' of model 'fixed' has shape [2, 3]")
    assert "\n" not in err and not repo.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "m", "--gpu"], "--name, --gpu describe a Triton model repository: add --triton-repo DIR"),
        (["--triton-repo", "r", "-o", "m.onnx"], "-o/--output and --triton-repo exclude each other"),
        (["--triton-repo", "r", "--max-batch-size", "4", "--max-queue-delay-us", "5"], "add --dynamic-batching"),
        (["--triton-repo", "r", "--kserve-yaml", "s.yaml"], "--kserve-yaml FILE and --storage-uri URI go together"),
        (["--triton-repo", "r", "--version", "0"], "--version: expected a positive integer"),
        (["--triton-repo", "r", "--dynamic-batching"], "--dynamic-batching needs --max-batch-size > 0"),
    ],
)
def test_bad_repository_options_are_one_line(args, message, saved, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["export", str(saved / "mlp.keras"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []
