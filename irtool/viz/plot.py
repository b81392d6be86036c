"""``plot_model`` and ``ModelPlot``, the picture it returns (shown inline by Jupyter)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import graphviz

from irtool.viz import render
from irtool.viz.layer_view import model_to_dot

#: Largest PNG side in pixels (Cairo's limit, which Graphviz's own dot enforces by shrinking the picture).
MAX_PNG_SIDE = 32767
#: Largest PNG area in pixels (about 160 MB of RGBA while drawing).
MAX_PNG_PIXELS = 40_000_000


class ModelPlot:
    """A rendered (or renderable) plot: the DOT graph, the file written and its bytes.

    Jupyter shows it inline through ``_repr_mimebundle_``: the PNG or SVG that was written, else
    an SVG rendered on demand (without the ``dpi`` scaling, which is for PNG). ``source`` is the
    DOT text, ``pipe(format)`` renders it to bytes and ``save(path)`` writes another file.
    """

    def __init__(
        self,
        dot: graphviz.Digraph,
        path: str | None = None,
        data: bytes | None = None,
        renderer: str | None = None,
        preferred_renderer: str | None = None,
    ):
        self.dot = dot
        self.path = path
        self.format = render.format_of(path) if path is not None else None
        self.data = data
        self.renderer = renderer
        self._preferred_renderer = preferred_renderer

    @property
    def source(self) -> str:
        """The DOT text of the picture."""
        return self.dot.source

    def pipe(self, format: str = "svg") -> bytes:
        """The picture as bytes in ``format`` (``png``, ``svg``, ``pdf`` or ``dot``)."""
        data, _ = _render(self.dot, format, self._preferred_renderer)
        return data

    def save(self, path: str | os.PathLike) -> ModelPlot:
        """Write the picture to ``path`` (format from its extension); returns the new ``ModelPlot``."""
        return save_plot(self.dot, path, self._preferred_renderer)

    def _repr_svg_(self) -> str | None:
        if self.format == "svg" and self.data is not None:
            return self.data.decode("utf-8")
        try:
            return self.pipe("svg").decode("utf-8")
        except (render.GraphvizUnavailableError, render.RenderError):
            return None

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" else None

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = {"text/plain": repr(self)}
        png = self._repr_png_()
        if png is not None:
            bundle["image/png"] = png
            return bundle
        svg = self._repr_svg_()
        if svg is not None:
            bundle["image/svg+xml"] = svg
        return bundle

    def __repr__(self) -> str:
        where = f" -> {self.path}" if self.path else ""
        by = f" (rendered by {self.renderer})" if self.renderer else ""
        return f"<ModelPlot {self.dot.name}{where}{by}>"


def _render(dot: graphviz.Digraph, fmt: str, preferred: str | None) -> tuple[bytes, str | None]:
    """``(bytes, renderer name)`` of ``dot`` in ``fmt``; ``dpi`` is applied to PNG only."""
    if fmt not in render.FORMATS:
        raise ValueError(f"Unsupported format {fmt!r}; use one of {', '.join(render.FORMATS)}")
    if fmt == "dot":
        return dot.source.encode("utf-8"), None
    if fmt != "png" and "dpi" in dot.graph_attr:
        # Graphviz scales vector output by dpi/72 too, which only makes an SVG or PDF huge.
        dot = dot.copy()
        del dot.graph_attr["dpi"]
    renderer = render.pick_renderer(fmt, dot.source, preferred)
    try:
        return _draw(dot, fmt, renderer), renderer.name
    except render.RenderError as error:
        if dot.graph_attr.get("splines") != "ortho":
            raise
        # Graphviz's orthogonal router has assertion failures of its own on some layouts (dot 2.43:
        # "newtrap: Trapezoid-table overflow", "maze.c: chkSgraph"); curved edges draw the same graph.
        curved = dot.copy()
        curved.graph_attr["splines"] = "spline"
        try:
            data = _draw(curved, fmt, renderer)
        except render.RenderError:
            raise error from None  # not the router's failure: the first error says what it is
        warnings.warn(
            f"{renderer.name} could not route the plot of '{dot.name}' with orthogonal edges ({error}); "
            "it is drawn with curved ones (splines='spline').",
            stacklevel=4,
        )
        return data, renderer.name


def _draw(dot: graphviz.Digraph, fmt: str, renderer: render.Renderer) -> bytes:
    if fmt == "png" and "plain" in renderer.formats:
        dot = _fit_png(dot, renderer)
    return renderer.render(dot.source, fmt)


def _fit_png(dot: graphviz.Digraph, renderer: render.Renderer) -> graphviz.Digraph:
    """``dot`` with its ``dpi`` lowered, if need be, so the PNG stays within ``MAX_PNG_SIDE`` and ``MAX_PNG_PIXELS``.

    A 1,000-layer chain is over 1,000 inches tall: at 200 dpi that is a 280,000-pixel PNG
    taking gigabytes to draw, which Graphviz's own ``dot`` shrinks to an unreadable sliver anyway.
    The layout is computed once more (``-Tplain``, fast) to know the size first.
    """
    dpi = float(dot.graph_attr.get("dpi", 96))
    width, height = render.layout_size(renderer, dot.source)
    fitted = min(dpi, MAX_PNG_SIDE / max(width, height, 1e-9), (MAX_PNG_PIXELS / max(width * height, 1e-9)) ** 0.5)
    if fitted >= dpi:
        return dot
    fitted = max(1, int(fitted))
    warnings.warn(
        f"The plot of '{dot.name}' is {width:.0f} x {height:.0f} inches: PNG resolution lowered from {dpi:g} to "
        f"{fitted} dpi to stay within {MAX_PNG_SIDE:,} pixels a side and {MAX_PNG_PIXELS:,} pixels; write an .svg "
        "file for a picture that zooms.",
        stacklevel=6,
    )
    dot = dot.copy()
    dot.graph_attr["dpi"] = str(fitted)
    return dot


def save_plot(dot: graphviz.Digraph, to_file: str | os.PathLike, renderer: str | None = None) -> ModelPlot:
    """Render ``dot`` to ``to_file`` (format from its extension), written atomically.

    When no renderer can write the format, the DOT text is written beside ``to_file`` (same
    name, ``.dot`` extension) and ``GraphvizUnavailableError`` says so and what to install.
    """
    path = os.fspath(to_file)
    fmt = render.format_of(path)
    try:
        data, used = _render(dot, fmt, renderer)
    except render.GraphvizUnavailableError as error:
        beside = str(Path(path).with_suffix(".dot"))
        render.write_atomically(beside, dot.source.encode("utf-8"))
        raise render.GraphvizUnavailableError(
            f"Cannot write {path}: {error}. The DOT source was written to {beside}.", dot.source, beside
        ) from None
    render.write_atomically(path, data)
    return ModelPlot(dot, path, data, used, renderer)


def plot_model(
    model,
    to_file: str | os.PathLike | None = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    splines: str = "ortho",
    renderer: str | None = None,
    **kwargs,
) -> ModelPlot:
    """Draw ``model``'s layer view to ``to_file`` (Keras' ``keras.utils.plot_model``).

    The format follows the extension: ``.png`` (default, at ``dpi``), ``.svg``, ``.pdf`` or
    ``.dot`` (the DOT text). The other arguments are ``model_to_dot``'s. Rendering uses
    Graphviz's ``dot`` when it is installed, else the pip-installed ``graphviz-pure`` (png and
    svg only); ``renderer`` picks one (``"dot"``, ``"graphviz-pure"`` or a program's path).
    Files are written atomically. When nothing can render the format, the DOT text is written
    next to ``to_file`` with a ``.dot`` extension and ``GraphvizUnavailableError`` (an
    ``ImportError``) says what to install.

    Returns a ``ModelPlot``, which Jupyter displays inline (Keras returns an IPython ``Image``
    of the file instead; ``ModelPlot`` shows the same PNG, or an SVG). With ``to_file=None``
    nothing is written and the plot is rendered when displayed.

    >>> import irtool as keras
    >>> inputs = keras.Input((784,), name="img")
    >>> model = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    >>> plot_model(model, to_file=None, show_shapes=True).source.startswith("digraph")
    True
    """
    dot = model_to_dot(
        model,
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        rankdir=rankdir,
        expand_nested=expand_nested,
        dpi=dpi,
        show_layer_activations=show_layer_activations,
        show_trainable=show_trainable,
        splines=splines,
        **kwargs,
    )
    if to_file is None:
        return ModelPlot(dot, preferred_renderer=renderer)
    return save_plot(dot, to_file, renderer)
