"""Serving exported models over the KServe v2 / Open Inference Protocol (``irtool serve``).

The server needs the ``serve`` extra (starlette, uvicorn, orjson, prometheus-client);
``missing_extra()`` says what is missing so the CLI can print the install line instead of a
traceback (``missing_ray()`` for ``irtool serve --ray``, which needs the ``ray`` extra).
``irtool.serving.app.create_app`` gives the ASGI app for users running their own ASGI server,
``irtool.serving.ray.deployment`` the same app as a Ray Serve application.
"""

from __future__ import annotations

import importlib.util

EXTRA_MODULES = ("starlette", "uvicorn", "orjson", "prometheus_client")
INSTALL = "pip install 'irtool[serve]'"
# `irtool serve --ray` and `irtool.serving.ray` (Ray Serve; the ray extra pulls the serve extra too).
RAY_MODULES = ("ray", "ray.serve")
RAY_INSTALL = "pip install 'irtool[ray]'"


def missing_extra() -> list[str]:
    """The serve extra's modules that are not installed (empty when serving can run)."""
    return [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]


def missing_ray() -> list[str]:
    """Ray Serve's modules that are not installed (empty when ``irtool serve --ray`` can run)."""
    if importlib.util.find_spec("ray") is None:
        return list(RAY_MODULES)
    return [name for name in RAY_MODULES if importlib.util.find_spec(name) is None]


def __getattr__(name: str):
    """``irtool.serving.create_app``: the ASGI app of ``irtool serve``, for users who run their own
    ASGI server or workers (``irtool.serving.app.create_app``)."""
    if name == "create_app":
        # import here: the app needs the serve extra, and `import irtool.serving` must work without it
        from irtool.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'irtool.serving' has no attribute {name!r}")
