"""Triton model repositories: ``irtool export --triton-repo`` writes them, ``irtool serve`` reads them.

A repository holds one folder per model, named as the model is served::

    DIR/<name>/config.pbtxt                  what Triton reads: platform, batching, tensors, instances
    DIR/<name>/<version>/model.onnx          the model (one file)
    DIR/<name>/<version>/model.onnx/         ... or, with weights over protobuf's 2 GiB, a folder holding
        model.onnx, model.onnx.data          the graph and its weights as ONNX external data

``config.pbtxt`` is Triton's ``ModelConfig`` protobuf in text format. It is written here as text (the
writer needs no Triton package) and read back with Triton's own ``ModelConfig`` message from
``tritonclient.grpc.model_config_pb2`` (the ``triton`` extra), which is also what the tests parse every
written config with.

The rule Triton users trip over most: with ``max_batch_size > 0`` Triton adds the batch dimension
itself, so each tensor's ``dims`` leave it out, and every input and output must then have a dynamic
first dimension. ``tensor_configs`` applies that rule and refuses a static first dim by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf import text_format
from onnx import TensorProto

from irtool.atomic import plain_modes, remove_leftovers, staging
from irtool.onnx.external_data import needs_external_data, write_with_external_data

try:
    from tritonclient.grpc import model_config_pb2
except (ImportError, RuntimeError):  # not installed, or tritonclient without grpcio (RuntimeError)
    model_config_pb2 = None

INSTALL = "pip install 'irtool[triton]'"
PLATFORM = "onnxruntime_onnx"
MODEL_FILENAME = "model.onnx"
DATA_FILENAME = "model.onnx.data"

#: ONNX element types to Triton's ``DataType`` names (model_config.proto).
TRITON_TYPES = {
    TensorProto.BOOL: "TYPE_BOOL",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.UINT16: "TYPE_UINT16",
    TensorProto.UINT32: "TYPE_UINT32",
    TensorProto.UINT64: "TYPE_UINT64",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT16: "TYPE_INT16",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.BFLOAT16: "TYPE_BF16",
    TensorProto.STRING: "TYPE_STRING",
}


class TritonError(ValueError):
    """A model or an option that Triton's repository format cannot express, or an unreadable config."""


@dataclass(frozen=True)
class TensorConfig:
    """One ``input``/``output`` entry of a config: ``dims`` without the batch dim when the model
    batches, ``-1`` for dynamic dims; ``reshape`` is the model's own shape when it differs (a tensor
    of rank 0, or of rank 1 with a batch dim, is ``dims: [1]`` reshaped to ``[]``)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None


def _declared(proto: onnx.ModelProto) -> tuple[list, list]:
    weights = {init.name for init in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in weights], list(proto.graph.output)


def _tensor_config(value, role: str, model: str, max_batch_size: int) -> TensorConfig:
    where = f"{role} '{value.name}' of model '{model}'"
    if value.type.WhichOneof("value") != "tensor_type":
        raise TritonError(f"{where} is a {value.type.WhichOneof('value')}; Triton configs describe tensors only")
    tensor = value.type.tensor_type
    if tensor.elem_type not in TRITON_TYPES:
        name = TensorProto.DataType.Name(tensor.elem_type)
        raise TritonError(f"{where} has element type {name}, which Triton has no data type for")
    if not tensor.HasField("shape"):
        raise TritonError(f"{where} has no declared rank; Triton needs the rank of every tensor")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim)
    if max_batch_size > 0:
        if not dims or dims[0] != -1:
            shown = "[" + ", ".join(str(d) if d != -1 else "?" for d in dims) + "]"
            raise TritonError(
                f"--max-batch-size {max_batch_size}: {where} has shape {shown}, whose first dim is not dynamic; "
                "Triton batches on a dynamic first dim of every input and output (export the model with a None "
                "batch dim, or use --max-batch-size 0 to serve it unbatched)"
            )
        dims = dims[1:]
    data_type = TRITON_TYPES[tensor.elem_type]
    if not dims:
        return TensorConfig(value.name, data_type, (1,), ())
    return TensorConfig(value.name, data_type, dims)


def tensor_configs(
    proto: onnx.ModelProto, max_batch_size: int = 0, model: str = "model"
) -> tuple[list[TensorConfig], list[TensorConfig]]:
    """The config's inputs and outputs for ``proto``, named exactly as in the ONNX graph."""
    inputs, outputs = _declared(proto)
    return (
        [_tensor_config(v, "input", model, max_batch_size) for v in inputs],
        [_tensor_config(v, "output", model, max_batch_size) for v in outputs],
    )


def _quoted(text: str) -> str:
    """A protobuf text-format string literal (UTF-8 kept, quotes, backslashes and controls escaped)."""
    escaped = "".join(
        "\\" + char if char in '"\\' else f"\\{ord(char):03o}" if ord(char) < 0x20 or char == "\x7f" else char
        for char in text
    )
    return f'"{escaped}"'


def _dims(values) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]" if values else "[ ]"


def _tensor_block(entries: list[TensorConfig]) -> list[str]:
    lines = []
    for i, entry in enumerate(entries):
        lines += ["  {", f"    name: {_quoted(entry.name)}", f"    data_type: {entry.data_type}"]
        lines.append(f"    dims: {_dims(entry.dims)}")
        if entry.reshape is not None:
            lines.append(f"    reshape: {{ shape: {_dims(entry.reshape)} }}")
        lines.append("  }," if i + 1 < len(entries) else "  }")
    return lines


def config_text(
    name: str,
    inputs: list[TensorConfig],
    outputs: list[TensorConfig],
    *,
    max_batch_size: int = 0,
    dynamic_batching: bool = False,
    max_queue_delay_us: int = 0,
    instances: int = 1,
    gpu: bool = False,
) -> str:
    """``config.pbtxt`` for an ONNX model served by Triton's ONNX Runtime backend."""
    lines = [f"name: {_quoted(name)}", f"platform: {_quoted(PLATFORM)}", f"max_batch_size: {max_batch_size}"]
    lines += ["input [", *_tensor_block(inputs), "]", "output [", *_tensor_block(outputs), "]"]
    lines += ["instance_group [", "  {", f"    count: {instances}", f"    kind: {'KIND_GPU' if gpu else 'KIND_CPU'}"]
    lines += ["  }", "]"]
    if dynamic_batching:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {max_queue_delay_us}", "}"]
    return "\n".join(lines) + "\n"


# -- writing -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WrittenModel:
    """What ``write_model`` wrote: the config, the ONNX file Triton loads, and whether it has external data."""

    config: Path
    model: Path
    external_data: bool


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name or "\\" in name:
        raise TritonError(f"--name: a model name is one folder name (not empty, no '/', not hidden), received {name!r}")


def _write_version(proto: onnx.ModelProto, folder: Path, external_data_threshold: int) -> tuple[Path, bool]:
    folder.mkdir()
    if not needs_external_data(proto, external_data_threshold):
        path = folder / MODEL_FILENAME
        path.write_bytes(proto.SerializeToString(deterministic=True))
        return path, False
    # Triton loads a multi-file ONNX model from a folder named model.onnx holding model.onnx
    # (server docs, user_guide/model_repository.md, "ONNX Models"); ONNX Runtime then finds the
    # data file next to the graph by its relative location.
    (folder / MODEL_FILENAME).mkdir()
    write_with_external_data(proto, folder / MODEL_FILENAME / MODEL_FILENAME, DATA_FILENAME)
    return folder / MODEL_FILENAME / MODEL_FILENAME, True


def write_model(
    proto: onnx.ModelProto,
    repository,
    name: str,
    version: int = 1,
    *,
    max_batch_size: int = 0,
    dynamic_batching: bool = False,
    max_queue_delay_us: int = 0,
    instances: int = 1,
    gpu: bool = False,
    external_data_threshold: int | None = None,
    before_commit: Callable[[Path], None] | None = None,
) -> WrittenModel:
    """Write ``proto`` as ``repository/name/version`` with its ``config.pbtxt``.

    Atomic per folder: everything is written under a hidden temporary folder in the repository
    (or in the model's folder, when it exists) and renamed into place, so a failure, including one
    raised by ``before_commit(model_path)`` (``irtool export --check``), leaves the repository as
    it was. An existing version is refused rather than overwritten: Triton may be serving it.

    >>> write_model(model.to_onnx(), "repo", "mlp", max_batch_size=8, dynamic_batching=True)  # doctest: +SKIP
    """
    _check_name(name)
    checks = [
        (isinstance(version, int) and version >= 1, f"--version: expected a positive integer, received {version!r}"),
        (max_batch_size >= 0, f"--max-batch-size: expected 0 or more, received {max_batch_size}"),
        (instances >= 1, f"--instances: expected a positive integer, received {instances}"),
        (max_queue_delay_us >= 0, f"--max-queue-delay-us: expected 0 or more, received {max_queue_delay_us}"),
        (
            not dynamic_batching or max_batch_size > 0,
            "--dynamic-batching needs --max-batch-size > 0 (Triton batches only models that declare a batch size)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise TritonError(message)
    inputs, outputs = tensor_configs(proto, max_batch_size, name)
    text = config_text(
        name,
        inputs,
        outputs,
        max_batch_size=max_batch_size,
        dynamic_batching=dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        instances=instances,
        gpu=gpu,
    )
    repository = Path(repository)
    model_dir = repository / name
    if (model_dir / str(version)).exists():
        raise TritonError(
            f"{model_dir / str(version)} already exists: choose another --version (Triton serves the highest) "
            "or remove that folder"
        )
    if repository.exists() and not repository.is_dir():
        raise TritonError(f"the repository {repository} is a file, not a folder")
    created = [folder for folder in (repository, *repository.parents) if not folder.exists()]
    repository.mkdir(parents=True, exist_ok=True)
    existing = model_dir.is_dir()
    remove_leftovers(repository)  # a writer killed before the model's folder existed staged here
    committed = False
    try:
        with staging(model_dir if existing else repository, name) as stage:
            model_path, external = _write_version(proto, stage / str(version), external_data_threshold)
            (stage / "config.pbtxt").write_text(text, encoding="utf-8")
            plain_modes(stage)  # Triton's container often runs as another user
            if before_commit is not None:
                before_commit(model_path)
            if existing:
                # The version first, then its config: each appears whole (renames), and an older
                # version is never left next to a config that describes only the new one's tensors
                # for longer than one rename.
                os.rename(stage / str(version), model_dir / str(version))
                os.replace(stage / "config.pbtxt", model_dir / "config.pbtxt")
            else:
                os.rename(stage, model_dir)
            committed = True
    except OSError as error:
        if error.errno and error.filename is None:  # a full disk: name the model being written
            raise OSError(error.errno, os.strerror(error.errno), str(model_dir)) from error
        raise
    finally:
        for folder in created if not committed else ():
            folder.rmdir()  # the folders this call created, deepest first, now empty again
    relative = model_path.relative_to(stage)
    return WrittenModel(model_dir / "config.pbtxt", model_dir / relative, external)


# -- reading -----------------------------------------------------------------------------------------
def read_config(path):
    """``path`` (a config.pbtxt) parsed into Triton's ``ModelConfig``; ``TritonError`` naming the file and line."""
    if model_config_pb2 is None:
        raise TritonError(
            f"{path}: reading Triton's config.pbtxt needs tritonclient[grpc] (its ModelConfig protobuf): {INSTALL}"
        )
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), config)
    except text_format.ParseError as error:
        raise TritonError(f"{path}: not a Triton model config: {error}") from error
    return config


@dataclass(frozen=True)
class ServingOptions:
    """What ``irtool serve`` takes from a model's config.pbtxt (``None``: the config does not say)."""

    max_batch_size: int | None = None
    max_queue_delay_us: int | None = None
    instances: int | None = None
    model_filename: str = MODEL_FILENAME


def serving_options(config, path, folder_name: str) -> ServingOptions:
    """A parsed config (read from ``path``) mapped onto ``irtool serve``'s knobs, refusing what Triton
    itself would refuse (a name other than the folder's, a platform other than ONNX Runtime's)."""
    if config.name and config.name != folder_name:
        raise TritonError(f"{path}: name {config.name!r} differs from its folder {folder_name!r} (Triton refuses it)")
    engine = config.platform or config.backend
    if engine and engine not in (PLATFORM, "onnxruntime"):
        raise TritonError(f"{path}: platform/backend {engine!r}: irtool serves ONNX models ({PLATFORM!r}) only")
    batching = config.HasField("dynamic_batching")
    # Triton stacks requests only with dynamic_batching; max_batch_size alone caps a request's rows.
    instances = sum(group.count or 1 for group in config.instance_group) if config.instance_group else None
    return ServingOptions(
        max_batch_size=config.max_batch_size if batching else 0,
        max_queue_delay_us=config.dynamic_batching.max_queue_delay_microseconds if batching else None,
        instances=instances,
        model_filename=config.default_model_filename or MODEL_FILENAME,
    )


def served_versions(config, versions: list[int]) -> list[int]:
    """The versions Triton serves under ``config.version_policy``: the latest one by default (or
    ``latest { num_versions: n }``), ``all``, or ``specific { versions: [...] }`` that exist."""
    policy = config.version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return sorted(versions)
    if choice == "specific":
        return sorted(set(versions) & set(policy.specific.versions))
    latest = policy.latest.num_versions if choice == "latest" else 1
    return sorted(versions)[-max(latest, 1) :]


def check_config(config, proto: onnx.ModelProto) -> list[str]:
    """How a parsed ``ModelConfig`` disagrees with the ONNX model (empty when Triton would accept it):
    every tensor named as in the graph, with its data type and dims (``-1`` where the model's dim is
    dynamic; a fixed config dim may narrow a dynamic one)."""
    expected_inputs, expected_outputs = tensor_configs(proto, config.max_batch_size, config.name or "model")
    problems = []
    for role, declared, expected in (
        ("input", config.input, expected_inputs),
        ("output", config.output, expected_outputs),
    ):
        by_name = {entry.name: entry for entry in expected}
        for entry in declared:
            want = by_name.pop(entry.name, None)
            if want is None:
                problems.append(f"{role} '{entry.name}' is not in the model")
                continue
            data_type = model_config_pb2.DataType.Name(entry.data_type)
            if data_type != want.data_type:
                problems.append(f"{role} '{entry.name}': config {data_type}, model {want.data_type}")
            dims = tuple(entry.dims)
            reshape = tuple(entry.reshape.shape) if entry.HasField("reshape") else None
            fits = len(dims) == len(want.dims) and all(m == -1 or c == m for c, m in zip(dims, want.dims))
            if not fits or reshape != want.reshape:
                problems.append(f"{role} '{entry.name}': config dims {list(dims)}, model {list(want.dims)}")
        problems += [f"{role} '{name}' of the model is missing from the config" for name in by_name]
    return problems
