"""A KServe ``InferenceService`` that serves a Triton model repository (``irtool export --kserve-yaml``).

KServe runs Triton (its ``kserve-tritonserver`` serving runtime) on the folder that ``storageUri``
names, mounted at ``/mnt/models`` and passed to ``tritonserver --model-store``: so ``storageUri`` is
the repository root (the folder holding ``<name>/config.pbtxt``), and clients call
``/v2/models/<name>/infer`` on the service with the model folder's name. Triton speaks only the v2
(Open Inference) protocol, which KServe must be told (``protocolVersion: v2``); without it KServe
finds no runtime for the model.
"""

from __future__ import annotations

import json
import re

API_VERSION = "serving.kserve.io/v1beta1"
RUNTIME = "kserve-tritonserver"
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def service_name(model_name: str) -> str:
    """``model_name`` as a Kubernetes resource name (lowercase letters, digits and '-', at most 63)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:63].rstrip("-")
    if not _DNS_LABEL.fullmatch(name):
        raise ValueError(f"cannot make a Kubernetes name from the model name {model_name!r}; pass one")
    return name


def inference_service(
    model_name: str,
    storage_uri: str,
    *,
    name: str | None = None,
    namespace: str | None = None,
    gpu: bool = False,
) -> dict:
    """The ``InferenceService`` manifest as a dict: Triton (``modelFormat: triton`` on the
    ``kserve-tritonserver`` runtime, ``protocolVersion: v2``) serving the repository at
    ``storage_uri`` (``s3://``, ``gs://``, ``pvc://``...), one GPU when ``gpu``.

    >>> inference_service("mlp", "s3://models/repo")["spec"]["predictor"]["model"]["runtime"]
    'kserve-tritonserver'
    """
    if not storage_uri or "://" not in storage_uri:
        raise ValueError(
            f"--storage-uri: expected a URI such as s3://bucket/repo or pvc://claim/repo, received {storage_uri!r}"
        )
    metadata = {"name": name or service_name(model_name)}
    if namespace:
        metadata["namespace"] = namespace
    model = {
        "modelFormat": {"name": "triton"},
        "runtime": RUNTIME,
        "protocolVersion": "v2",
        "storageUri": storage_uri,
    }
    if gpu:
        model["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": {"model": model}},
    }


def to_yaml(value, indent: int = 0) -> str:
    """Block-style YAML for dicts of dicts, strings and numbers; strings are double-quoted (JSON
    escapes are valid YAML), so no value is read back as another type."""
    pad = " " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
        else:
            scalar = json.dumps(item) if isinstance(item, str) else str(item)
            lines.append(f"{pad}{key}: {scalar}")
    return "\n".join(lines) + ("\n" if indent == 0 else "")
