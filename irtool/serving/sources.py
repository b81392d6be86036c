"""What ``irtool serve MODEL...`` serves: each MODEL argument to ``ServedModel``s.

MODEL is ``name=path`` or a path (the name is the file's stem): an ``.onnx`` file, a ``.keras``
file or a model.py (exported in memory), or a directory in Triton's model-repository layout —
a repository (``<name>/<version>/model.onnx``, every model in it) or one model's folder
(``<version>/model.onnx``, named by the folder or by ``name=``); each numeric version folder
becomes a version. A version's ``model.onnx`` may be a folder holding ``model.onnx`` and its
external data, as Triton wants multi-file models.

A model folder's ``config.pbtxt`` (Triton's ``ModelConfig``, ``irtool.serving.triton``) picks its
versions as Triton does (``version_policy``; the latest one by default), sets its batching (``max_batch_size`` with ``dynamic_batching``'s ``max_queue_delay_microseconds``), its
instance count (``instance_group``) and its file name (``default_model_filename``), and is checked
against the ONNX file as Triton checks it; options given to ``irtool serve`` override it.
"""

from __future__ import annotations

import os
from pathlib import Path

from irtool.loading import LoadError, load
from irtool.runtime import Session, load_onnx
from irtool.serving import triton
from irtool.serving.app import ServedModel

CONFIG = "config.pbtxt"


def parse_model_argument(text: str) -> tuple[str | None, Path]:
    """``"name=path"`` -> ``("name", Path("path"))``; a bare path gives ``None`` for the name."""
    name, sep, path = text.partition("=")
    if sep and name and os.sep not in name and not Path(text).exists():
        return name, Path(path)
    return None, Path(text)


def _model_file(path: Path) -> Path:
    """A version's model: the file, or ``model.onnx`` inside a multi-file model's folder."""
    return path / triton.MODEL_FILENAME if path.is_dir() else path


def _versions(folder: Path, filename: str = triton.MODEL_FILENAME) -> dict[str, Path]:
    # Triton ignores version folders that are not numbers or start with 0 (model_repository.md).
    return {
        child.name: _model_file(child / filename)
        for child in sorted(folder.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
        if child.is_dir() and child.name.isdigit() and not child.name.startswith("0") and (child / filename).exists()
    }


def _repository_model(folder: Path, name: str) -> tuple[triton.ServingOptions, dict[str, Path]]:
    """A model folder's versions and what its config.pbtxt sets, checked against each version's
    ONNX file as Triton checks it at load time (a mismatch is refused, naming the tensor)."""
    path = folder / CONFIG
    if not path.is_file():
        return triton.ServingOptions(), _versions(folder)
    try:
        config = triton.read_config(path)
        options = triton.serving_options(config, path, name)
        versions = _versions(folder, options.model_filename)
        kept = triton.served_versions(config, [int(v) for v in versions])
        versions = {v: p for v, p in versions.items() if int(v) in kept}
        for version, model in versions.items():
            problems = triton.check_config(config, load_onnx(model))
            if problems:
                raise LoadError(f"{path} does not describe version {version} ({model}): {'; '.join(problems)}")
    except (triton.TritonError, ValueError, OSError) as error:
        raise LoadError(str(error)) from error
    if not versions:
        raise LoadError(
            f"{folder}: no version to serve: no numbered folder holds {options.model_filename} "
            "(or none that config.pbtxt's version_policy selects)"
        )
    return options, versions


def onnx_sources(
    text: str, weights=None, object_name=None, on_load=None
) -> list[tuple[str, str, object, triton.ServingOptions]]:
    """``(name, version, onnx source, options from config.pbtxt)`` for one MODEL argument; ``LoadError``
    naming the path. ``on_load(loaded)`` is told each ``LoadedModel`` a model.py or .keras became
    (``irtool serve`` says when a model.py's weights are freshly initialised)."""
    name, path = parse_model_argument(text)
    if not path.exists():
        raise LoadError(f"{path}: no such file or directory")
    if path.is_dir():
        if _versions(path) or (path / CONFIG).is_file():
            options, versions = _repository_model(path, path.resolve().name)
            return [(name or path.resolve().name, v, str(p), options) for v, p in versions.items()]
        # hidden folders are skipped: `irtool export --triton-repo` stages its writes in one
        found = [
            (sub.name, *_repository_model(sub, sub.name))
            for sub in sorted(path.iterdir())
            if sub.is_dir() and not sub.name.startswith(".")
        ]
        found = [(model, options, versions) for model, options, versions in found if versions]
        if not found:
            raise LoadError(
                f"{path}: not a model repository: expected <name>/<version>/model.onnx "
                "(or <version>/model.onnx for one model)"
            )
        if name is not None:
            raise LoadError(f"{path} is a repository of {len(found)} models; name=PATH names one model's folder")
        return [(model, v, str(p), options) for model, options, versions in found for v, p in versions.items()]
    loaded = load(path, object_name, weights=weights)
    if on_load is not None:
        on_load(loaded)
    source = str(path) if loaded.kind == "onnx" else loaded.onnx_bytes()
    return [(name or path.stem, "1", source, triton.ServingOptions())]


def served_models(
    arguments,
    *,
    providers=("cpu",),
    instances: int | None = None,
    max_batch_size: int | None = None,
    max_queue_delay_us: int | None = None,
    inline_max_us: int | None = None,
    threads: int | None = None,
    weights=None,
    object_name=None,
    on_load=None,
) -> list[ServedModel]:
    """A ``ServedModel`` per model version named by ``arguments``, each with ``instances``
    sessions warmed up at batch 1 and at ``max_batch_size``. ``None`` for ``instances``,
    ``max_batch_size`` or ``max_queue_delay_us`` takes the model's config.pbtxt value, else
    1 instance, no batching, no delay."""
    models, seen = [], set()
    for text in arguments:
        for name, version, source, options in onnx_sources(text, weights, object_name, on_load):
            if (name, version) in seen:
                raise LoadError(f"model '{name}' version {version} is given twice; name one of them with name=PATH")
            seen.add((name, version))
            count = _first(instances, options.instances, 1)
            rows = _first(max_batch_size, options.max_batch_size, 0)
            delay = _first(max_queue_delay_us, options.max_queue_delay_us, 0)
            warmup = (1, rows) if rows > 1 else True
            sessions = [Session(source, providers, threads=threads, warmup=warmup) for _ in range(count)]
            model = ServedModel(name, sessions, version, rows, delay)
            if inline_max_us is not None:
                model.inline_max_us = inline_max_us
            models.append(model)
    return models


def _first(*values):
    return next(v for v in values if v is not None)
