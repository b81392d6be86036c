"""docs/deploy.md shows what the export writes: its config.pbtxt and its KServe InferenceService are
regenerated here by the documented command (run as a user runs it, in a fresh process) and compared."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
yaml = pytest.importorskip("yaml")


def block_after(marker: str, language: str = "") -> str:
    """The first fenced block after ``marker`` in docs/deploy.md."""
    tail = DEPLOY.split(marker, 1)[1]
    return re.search(rf"```{language}\n(.*?)```", tail, re.S).group(1)


def test_deploy_md_shows_what_the_export_writes(tmp_path):
    # the documented command without --weights (trained weights change no line of either file)
    command = [
        sys.executable, "-m", "irtool", "export", str(ROOT / "examples" / "mnist_mlp.py"),
        "--triton-repo", "models", "--max-batch-size", "8", "--dynamic-batching", "--max-queue-delay-us", "100",
        "--instances", "2", "--kserve-yaml", "mnist.yaml", "--storage-uri", "s3://my-bucket/models",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "models" / "mnist_mlp" / "config.pbtxt").read_text()
    assert config == block_after("with this `config.pbtxt`")
    assert sorted(os.listdir(tmp_path / "models" / "mnist_mlp")) == ["1", "config.pbtxt"]
    manifest = (tmp_path / "mnist.yaml").read_text()
    assert manifest == block_after("also writes this `InferenceService`", "yaml")
    model = yaml.safe_load(manifest)["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2" and model["runtime"] == "kserve-tritonserver"


def test_deploy_md_docker_command_uses_tritons_image_ports_and_repository_flag():
    command = block_after("## 2. Run it in Triton")
    assert "nvcr.io/nvidia/tritonserver:<yy.mm>-py3" in command
    assert all(f"-p {port}:{port}" in command for port in (8000, 8001, 8002))
    assert '-v "$PWD/models:/models"' in command and "tritonserver --model-repository=/models" in command
