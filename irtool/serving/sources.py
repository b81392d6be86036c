"""What ``irtool serve MODEL...`` serves: each MODEL argument to ``ServedModel``s.

MODEL is ``name=path`` or a path (the name is the file's stem): an ``.onnx`` file, a ``.keras``
file or a model.py (exported in memory), or a directory in Triton's model-repository layout —
a repository (``<name>/<version>/model.onnx``, every model in it) or one model's folder
(``<version>/model.onnx``, named by the folder or by ``name=``); each numeric version folder
becomes a version.
"""

from __future__ import annotations

import os
from pathlib import Path

from irtool.loading import LoadError, load
from irtool.runtime import Session
from irtool.serving.app import ServedModel


def parse_model_argument(text: str) -> tuple[str | None, Path]:
    """``"name=path"`` -> ``("name", Path("path"))``; a bare path gives ``None`` for the name."""
    name, sep, path = text.partition("=")
    if sep and name and os.sep not in name and not Path(text).exists():
        return name, Path(path)
    return None, Path(text)


def _versions(folder: Path) -> dict[str, Path]:
    return {
        child.name: child / "model.onnx"
        for child in sorted(folder.iterdir(), key=lambda p: p.name)
        if child.is_dir() and child.name.isdigit() and (child / "model.onnx").exists()
    }


def onnx_sources(text: str, weights=None, object_name=None) -> list[tuple[str, str, object]]:
    """``(name, version, onnx source)`` for one MODEL argument; ``LoadError`` naming the path."""
    name, path = parse_model_argument(text)
    if not path.exists():
        raise LoadError(f"{path}: no such file or directory")
    if path.is_dir():
        versions = _versions(path)
        if versions:
            return [(name or path.name, v, str(p)) for v, p in versions.items()]
        found = [(sub.name, _versions(sub)) for sub in sorted(path.iterdir()) if sub.is_dir()]
        found = [(model, versions) for model, versions in found if versions]
        if not found:
            raise LoadError(
                f"{path}: not a model repository: expected <name>/<version>/model.onnx "
                "(or <version>/model.onnx for one model)"
            )
        if name is not None:
            raise LoadError(f"{path} is a repository of {len(found)} models; name=PATH names one model's folder")
        return [(model, v, str(p)) for model, versions in found for v, p in versions.items()]
    loaded = load(path, object_name, weights=weights)
    source = str(path) if loaded.kind == "onnx" else loaded.onnx_bytes()
    return [(name or path.stem, "1", source)]


def served_models(
    arguments,
    *,
    providers=("cpu",),
    instances: int = 1,
    max_batch_size: int = 0,
    max_queue_delay_us: int = 0,
    threads: int | None = None,
    weights=None,
    object_name=None,
) -> list[ServedModel]:
    """A ``ServedModel`` per model version named by ``arguments``, each with ``instances``
    sessions warmed up at batch 1 and at ``max_batch_size``."""
    models, seen = [], set()
    warmup = (1, max_batch_size) if max_batch_size > 1 else True
    for text in arguments:
        for name, version, source in onnx_sources(text, weights, object_name):
            if (name, version) in seen:
                raise LoadError(f"model '{name}' version {version} is given twice; name one of them with name=PATH")
            seen.add((name, version))
            sessions = [Session(source, providers, threads=threads, warmup=warmup) for _ in range(instances)]
            models.append(ServedModel(name, sessions, version, max_batch_size, max_queue_delay_us))
    return models
