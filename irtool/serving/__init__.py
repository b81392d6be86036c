"""Serving exported models over the KServe v2 / Open Inference Protocol (``irtool serve``).

The server needs the ``serve`` extra (starlette, uvicorn, orjson, prometheus-client);
``missing_extra()`` says what is missing so the CLI can print the install line instead of a
traceback. ``irtool.serving.app.create_app`` gives the ASGI app for users running their own
ASGI server.
"""

from __future__ import annotations

import importlib.util

EXTRA_MODULES = ("starlette", "uvicorn", "orjson", "prometheus_client")
INSTALL = "pip install 'irtool[serve]'"


def missing_extra() -> list[str]:
    """The serve extra's modules that are not installed (empty when serving can run)."""
    return [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]


def __getattr__(name: str):
    """``irtool.serving.create_app``: the ASGI app of ``irtool serve``, for users who run their own
    ASGI server or workers (``irtool.serving.app.create_app``)."""
    if name == "create_app":
        # import here: the app needs the serve extra, and `import irtool.serving` must work without it
        from irtool.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'irtool.serving' has no attribute {name!r}")
