"""Execution providers: short names, the options irtool gives them, and checks that they really run.

ONNX Runtime takes providers as a priority list of names or ``(name, options)`` pairs and quietly
falls back to the next one when a provider cannot start (a CPU wheel asked for CUDA only warns and
runs on the CPU). ``resolve`` turns what a user writes (``"cuda"``, ``("cuda", {"device_id": 1})``,
``"CUDAExecutionProvider"``) into that list with irtool's defaults filled in, ``check_active``
compares it with what the session reports, and ``installed_runtimes`` finds the broken state where
``onnxruntime`` and ``onnxruntime-gpu`` are both installed (they ship the same ``onnxruntime``
module, so whichever was installed last wins, file by file).

CUDA defaults, and why:

- ``cudnn_conv_algo_search="HEURISTIC"``: ONNX Runtime's default, ``EXHAUSTIVE``, benchmarks every
  convolution algorithm for every new input shape, which costs hundreds of milliseconds per shape
  when batch sizes or image sizes vary (onnxruntime#19838); steady-state speed is about the same.
- ``use_tf32=0``: Ampere and later GPUs otherwise run float32 matmuls and convolutions in TF32
  (10-bit mantissa), which moves results by ~1e-3 and breaks 1e-5 parity with the NumPy executor.
  Pass ``{"use_tf32": 1}`` for speed when that parity does not matter.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from typing import Any

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

#: Short names accepted wherever a provider is named (``--providers cuda,cpu``).
ALIASES = {
    "cpu": CPU,
    "cuda": CUDA,
    "tensorrt": TENSORRT,
    "trt": TENSORRT,
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}

#: Options irtool sets for a provider unless the caller gives them (see the module docstring).
DEFAULT_OPTIONS: dict[str, dict[str, str]] = {
    CUDA: {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"},
}

#: Keyword names ``cuda_options`` accepts, mapped to ONNX Runtime's option names.
_CUDA_KEYWORDS = {
    "device_id": "device_id",
    "memory_limit": "gpu_mem_limit",
    "conv_algo_search": "cudnn_conv_algo_search",
    "tf32": "use_tf32",
    "cuda_graph": "enable_cuda_graph",
}

#: The distributions that install the ``onnxruntime`` module; at most one may be installed.
RUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-training",
)

ProviderSpec = str | tuple[str, Mapping[str, Any]]


class ProviderError(RuntimeError):
    """A requested execution provider is unknown, not installed, or did not start."""


def provider_name(name: str) -> str:
    """The ONNX Runtime name for ``name``: an alias (``"cuda"``, any case) or an ORT name as is."""
    alias = ALIASES.get(name.strip().lower())
    if alias is not None:
        return alias
    if name.endswith("ExecutionProvider"):
        return name
    raise ProviderError(
        f"unknown execution provider {name!r}: expected one of {', '.join(sorted(set(ALIASES)))} "
        "or an ONNX Runtime name such as 'CUDAExecutionProvider'"
    )


def _option_text(value: Any) -> str:
    """ONNX Runtime's provider options are strings; booleans become "1"/"0"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _conv_algo_search(value: Any) -> str:
    search = str(value).upper()
    if search not in ("HEURISTIC", "EXHAUSTIVE", "DEFAULT"):
        raise ProviderError(
            f"cudnn_conv_algo_search: expected 'HEURISTIC', 'EXHAUSTIVE' or 'DEFAULT', received {value!r}"
        )
    return search


def cuda_options(
    device_id: int = 0,
    memory_limit: int | None = None,
    conv_algo_search: str = "HEURISTIC",
    tf32: bool = False,
    cuda_graph: bool = False,
) -> dict[str, str]:
    """``CUDAExecutionProvider`` options from readable keywords.

    ``memory_limit`` is in bytes (ONNX Runtime's ``gpu_mem_limit``); ``conv_algo_search`` is
    ``"HEURISTIC"``, ``"EXHAUSTIVE"`` or ``"DEFAULT"``; ``cuda_graph`` captures the whole run as
    one CUDA graph, which needs fixed shapes and IO binding (``Session.bind``).

    >>> cuda_options(device_id=1, tf32=True)["use_tf32"]
    '1'
    """
    options = {
        "device_id": str(int(device_id)),
        "cudnn_conv_algo_search": _conv_algo_search(conv_algo_search),
        "use_tf32": _option_text(tf32),
    }
    if memory_limit is not None:
        options["gpu_mem_limit"] = str(int(memory_limit))
    if cuda_graph:
        options["enable_cuda_graph"] = "1"
    return options


def resolve(
    providers: ProviderSpec | Sequence[ProviderSpec] | None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """``[(ONNX Runtime name, options), ...]`` in priority order.

    ``providers`` is one provider or a list; each is a name (alias or ORT name) or a
    ``(name, options)`` pair. ``provider_options`` maps a name (alias or ORT name) to more
    options. Options are layered: irtool's ``DEFAULT_OPTIONS``, then the pair's, then
    ``provider_options``'; the CUDA keywords of ``cuda_options`` (``memory_limit``, ``tf32``...)
    are accepted there too and translated.
    """
    if providers is None:
        providers = [CPU]
    elif isinstance(providers, str) or (
        isinstance(providers, tuple) and len(providers) == 2 and isinstance(providers[1], Mapping)
    ):
        providers = [providers]
    extra: dict[str, Mapping[str, Any]] = {}
    for name, options in (provider_options or {}).items():
        extra[provider_name(name)] = options
    resolved = []
    for entry in providers:
        name, options = (entry[0], dict(entry[1])) if isinstance(entry, (tuple, list)) else (entry, {})
        name = provider_name(str(name))
        if any(name == seen for seen, _ in resolved):
            raise ProviderError(f"execution provider {name} is listed twice")
        merged = dict(DEFAULT_OPTIONS.get(name, {}))
        for key, value in {**options, **extra.get(name, {})}.items():
            if name == CUDA:
                key = _CUDA_KEYWORDS.get(key, key)
                if key == "cudnn_conv_algo_search":
                    value = _conv_algo_search(value)
            merged[key] = _option_text(value)
        resolved.append((name, merged))
    unused = sorted(set(extra) - {name for name, _ in resolved})
    if unused:
        raise ProviderError(f"provider_options name {', '.join(unused)}, which is not among the providers requested")
    return resolved


def installed_runtimes() -> list[str]:
    """The installed distributions that provide the ``onnxruntime`` module (more than one is broken)."""
    found = []
    for distribution in RUNTIME_DISTRIBUTIONS:
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(distribution)
    return found


def conflict_message(distributions: Sequence[str]) -> str | None:
    """Why several ONNX Runtime distributions at once break the install, and the fix; ``None`` if fine."""
    if len(distributions) < 2:
        return None
    keep = next((d for d in distributions if d != "onnxruntime"), distributions[-1])
    return (
        f"{' and '.join(distributions)} are both installed; they share the 'onnxruntime' module, so neither "
        f"works reliably. Fix: pip uninstall -y {' '.join(distributions)} && pip install {keep}"
    )


def check_active(
    requested: Sequence[tuple[str, Mapping[str, str]]], available: Sequence[str], active: Sequence[str] | None = None
) -> str | None:
    """``None`` when every requested provider is ``active`` (a session's providers; ``None`` before
    there is a session: every installed one counts), else one sentence: asked, running, fix."""
    running = active
    if active is None:
        active = [name for name, _ in requested if name in available]
    missing = [name for name, _ in requested if name not in active]
    if not missing:
        return None
    asked = ", ".join(name for name, _ in requested)
    not_installed = [name for name in missing if name not in available]
    if not_installed:
        fix = "install a build of ONNX Runtime that has it"
        if CUDA in not_installed or TENSORRT in not_installed:
            fix = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (a CUDA 12 or 13 build to match the driver)"
        reason = f"{', '.join(not_installed)} is not in this ONNX Runtime (it has {', '.join(available)})"
    else:
        fix = "check the CUDA and cuDNN libraries onnxruntime-gpu needs (onnxruntime.print_debug_info() lists them)"
        reason = f"{', '.join(missing)} did not start"
    conflict = conflict_message(installed_runtimes())
    if conflict:
        fix = conflict.split("Fix: ", 1)[1]
        reason += f"; {conflict.split(';')[0]}"
    runs = f"the session runs on {', '.join(running)}" if running else "no session was made"
    return f"asked for {asked}, but {runs}: {reason}. Fix: {fix}"


__all__ = [
    "ALIASES",
    "CPU",
    "CUDA",
    "DEFAULT_OPTIONS",
    "RUNTIME_DISTRIBUTIONS",
    "TENSORRT",
    "ProviderError",
    "ProviderSpec",
    "check_active",
    "conflict_message",
    "cuda_options",
    "installed_runtimes",
    "provider_name",
    "resolve",
]
