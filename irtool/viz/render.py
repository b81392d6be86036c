"""Turning DOT text into pictures: finding a renderer, running it, writing files atomically.

Two renderers are known, tried in this order:

- ``dot``, Graphviz's own program, when it is on ``PATH``: png, svg, pdf (whatever its build
  lists under ``dot -T?``);
- ``graphviz-pure``, a self-contained port of Graphviz's ``dot`` installed by pip (a dependency
  of irtool, so a fresh ``pip install irtool`` can plot): png and svg, no pdf.

``.dot`` output needs no renderer: it is the DOT text itself. When no renderer can write the
requested format, ``GraphvizUnavailableError`` (an ``ImportError``, like Keras' error for a
missing Graphviz) says what to install, and carries the DOT text; ``plot_model`` also writes
it beside the requested file.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from irtool.atomic import replacing

#: Output formats by file extension.
FORMATS = ("png", "svg", "pdf", "dot")
PIP_RENDERER = "graphviz-pure"
#: Seconds a renderer may take before we give up on it (a 1,000-layer model takes well under one).
RENDER_TIMEOUT = 300
INSTALL_HINT = (
    "install Graphviz's `dot` (https://graphviz.org/download/, e.g. `apt-get install graphviz` or "
    "`brew install graphviz`: png, svg, pdf) or `pip install graphviz-pure` (png, svg)"
)


class GraphvizUnavailableError(ImportError):
    """No renderer can write the requested format. ``source`` holds the DOT text; ``dot_path`` where it was saved."""

    def __init__(self, message: str, source: str, dot_path: str | None = None):
        super().__init__(message)
        self.source = source
        self.dot_path = dot_path


class RenderError(RuntimeError):
    """A renderer was found but failed (its own message is included)."""


@dataclass(frozen=True)
class Renderer:
    """A ``dot``-compatible program: its name, its path and the output formats it lists."""

    name: str
    path: str
    formats: frozenset

    def render(self, source: str, fmt: str) -> bytes:
        """The picture of ``source`` (DOT text) in format ``fmt``, as bytes."""
        try:
            done = subprocess.run(
                [self.path, f"-T{fmt}"],
                input=source.encode("utf-8"),
                capture_output=True,
                timeout=RENDER_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise RenderError(f"{self.name} did not finish rendering {fmt} within {RENDER_TIMEOUT} s") from error
        except OSError as error:
            raise RenderError(f"cannot run {self.name} ({self.path}): {error}") from error
        if done.returncode != 0 or not done.stdout:
            message = " ".join(done.stderr.decode("utf-8", "replace").split()) or f"exit status {done.returncode}"
            raise RenderError(f"{self.name} failed to render {fmt}: {message}")
        return done.stdout


def _pip_renderer_path() -> str | None:
    """``graphviz-pure`` on PATH, else next to this Python (a venv that is used without being activated)."""
    found = shutil.which(PIP_RENDERER)
    if found:
        return found
    names = [PIP_RENDERER + ".exe", PIP_RENDERER] if os.name == "nt" else [PIP_RENDERER]
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        for name in names:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


@functools.cache
def _formats(path: str) -> frozenset:
    """The output formats a ``dot``-like program lists for ``-T?`` (it prints them as an error)."""
    try:
        done = subprocess.run([path, "-T?"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    text = (done.stderr + done.stdout).decode("utf-8", "replace")
    listed = text.split("Use one of:", 1)[1] if "Use one of:" in text else ""
    return frozenset(re.sub(r":\S*", "", word) for word in listed.split())


def available_renderers(preferred: str | None = None) -> list[Renderer]:
    """The renderers found, in the order they are tried.

    ``preferred`` picks one: ``"dot"``, ``"graphviz-pure"``, or the path of a ``dot``-compatible program.
    """
    if preferred is not None:
        if preferred == PIP_RENDERER:
            path = _pip_renderer_path()
        elif os.sep in preferred or (os.altsep and os.altsep in preferred):
            path = preferred if os.path.isfile(preferred) else None
        else:
            path = shutil.which(preferred)
        if path is None:
            raise GraphvizUnavailableError(f"renderer {preferred!r} not found; {INSTALL_HINT}", source="")
        name = PIP_RENDERER if preferred == PIP_RENDERER else Path(preferred).name
        return [Renderer(name, path, _formats(path))]
    found = []
    system_dot = shutil.which("dot")
    if system_dot:
        found.append(Renderer("dot", system_dot, _formats(system_dot)))
    pip_path = _pip_renderer_path()
    if pip_path:
        found.append(Renderer(PIP_RENDERER, pip_path, _formats(pip_path)))
    return found


def pick_renderer(fmt: str, source: str, preferred: str | None = None) -> Renderer:
    """The first renderer that writes ``fmt``, or ``GraphvizUnavailableError`` saying what to install."""
    try:
        renderers = available_renderers(preferred)
    except GraphvizUnavailableError as error:
        raise GraphvizUnavailableError(str(error), source) from None
    for renderer in renderers:
        if fmt in renderer.formats:
            return renderer
    if not renderers:
        message = f"no Graphviz renderer found to write {fmt}: {INSTALL_HINT}"
    else:
        found = "; ".join(
            f"{r.name} writes {', '.join(sorted(r.formats & {'png', 'svg', 'pdf'})) or 'none'}" for r in renderers
        )
        needs = "Graphviz's `dot` (https://graphviz.org/download/)" if fmt == "pdf" else INSTALL_HINT
        message = f"no renderer here writes {fmt} ({found}); {fmt} needs {needs}"
    raise GraphvizUnavailableError(message, source)


def layout_size(renderer: Renderer, source: str) -> tuple[float, float]:
    """Width and height in inches of ``source``'s layout (the first line of ``-Tplain``: ``graph scale w h``)."""
    first = renderer.render(source, "plain").split(b"\n", 1)[0].split()
    try:
        return float(first[2]), float(first[3])
    except (IndexError, ValueError) as error:
        raise RenderError(f"{renderer.name} -Tplain gave an unexpected first line: {first!r}") from error


def format_of(path: str | os.PathLike) -> str:
    """The output format named by ``path``'s extension (``png`` when it has none, as in Keras)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix == "gv":
        return "dot"
    if suffix not in FORMATS:
        raise ValueError(
            f"Cannot plot to {os.fspath(path)!r}: unsupported file extension .{suffix}; "
            f"use one of {', '.join('.' + f for f in FORMATS)}"
        )
    return suffix


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    An interrupted write never leaves a truncated picture behind, and a reader never sees one.
    """
    with replacing(path) as tmp:
        tmp.write_bytes(data)
