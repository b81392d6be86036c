"""``plot_model``: files from both renderers, the fallbacks and errors, atomic writes, large models."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import sys
import time
import xml.etree.ElementTree as ET

import pytest

import irtool as keras
from irtool import layers
from irtool.viz import GraphvizUnavailableError, ModelPlot, RenderError, model_to_dot, plot, render

from .dotparse import parse_dot
from .guide_models import GUIDE_MODELS, mnist_mlp, nested_autoencoder, ticket_classifier

PIP_RENDERER = render._pip_renderer_path()
SYSTEM_DOT = shutil.which("dot")
needs_pip_renderer = pytest.mark.skipif(PIP_RENDERER is None, reason="graphviz-pure is not installed")
needs_system_dot = pytest.mark.skipif(SYSTEM_DOT is None, reason="Graphviz's dot is not installed")
RENDERERS = [
    pytest.param("graphviz-pure", marks=needs_pip_renderer),
    pytest.param("dot", marks=needs_system_dot),
]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_root(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def svg_texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.text]


def files_in(folder) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("name", sorted(GUIDE_MODELS))
def test_guide_models_render_to_png_and_svg(name, renderer, tmp_path):
    model = GUIDE_MODELS[name]()
    png = keras.utils.plot_model(model, tmp_path / "m.png", show_shapes=True, renderer=renderer)
    assert isinstance(png, ModelPlot) and png.renderer == renderer
    data = (tmp_path / "m.png").read_bytes()
    assert data == png.data
    width, height = png_size(data)
    assert 200 <= width <= 6000 and 200 <= height <= 12000, (width, height)
    keras.utils.plot_model(model, tmp_path / "m.svg", show_shapes=True, renderer=renderer)
    texts = svg_texts(svg_root((tmp_path / "m.svg").read_bytes()))
    for op in model.operations:
        assert op.name in texts
    assert files_in(tmp_path) == ["m.png", "m.svg"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_dpi_scales_the_png(renderer, tmp_path):
    model = mnist_mlp()
    small = png_size(keras.utils.plot_model(model, tmp_path / "a.png", dpi=72, renderer=renderer).data)
    large = png_size(keras.utils.plot_model(model, tmp_path / "b.png", dpi=216, renderer=renderer).data)
    assert large[0] == pytest.approx(3 * small[0], rel=0.05)
    assert large[1] == pytest.approx(3 * small[1], rel=0.05)


@needs_system_dot
def test_system_dot_writes_pdf(tmp_path):
    result = keras.utils.plot_model(nested_autoencoder(), tmp_path / "m.pdf", expand_nested=True, renderer="dot")
    assert (tmp_path / "m.pdf").read_bytes()[:5] == b"%PDF-"
    assert result.renderer == "dot"


@needs_system_dot
@needs_pip_renderer
def test_system_dot_is_preferred_when_installed(tmp_path):
    assert [r.name for r in render.available_renderers()] == ["dot", "graphviz-pure"]
    assert keras.utils.plot_model(mnist_mlp(), tmp_path / "m.svg").renderer == "dot"


@needs_pip_renderer
def test_graphviz_pure_is_found_next_to_python_without_path(monkeypatch):
    if os.path.dirname(PIP_RENDERER) not in {os.path.dirname(sys.executable), render.sysconfig.get_path("scripts")}:
        pytest.skip("graphviz-pure is installed somewhere other than this Python's scripts folder")
    monkeypatch.setenv("PATH", "")
    found = render.available_renderers()
    assert [r.name for r in found] == ["graphviz-pure"]
    assert {"png", "svg"} <= found[0].formats and "pdf" not in found[0].formats


@needs_pip_renderer
def test_dot_parser_agrees_with_a_real_dot_parser():
    """The tests' DOT reader sees the same nodes, clusters and edges as graphviz-pure's ``-Tjson``."""
    import json

    source = model_to_dot(nested_autoencoder(), expand_nested=True, show_shapes=True).source
    ours = parse_dot(source)
    renderer = render.available_renderers("graphviz-pure")[0]
    graph = json.loads(renderer.render(source, "json"))
    objects = graph["objects"]
    clusters = {o["name"]: o for o in objects if o["name"].startswith("cluster_")}
    nodes = [o["name"] for o in objects if not o["name"].startswith("cluster_")]
    assert nodes == list(ours.nodes)
    assert {(objects[e["tail"]]["name"], objects[e["head"]]["name"]) for e in graph["edges"]} == ours.edge_set
    assert {name: [objects[i]["name"] for i in c["nodes"]] for name, c in clusters.items()} == ours.clusters


def test_dot_output_needs_no_renderer(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "available_renderers", lambda preferred=None: [])
    model = ticket_classifier()
    result = keras.utils.plot_model(model, tmp_path / "m.dot", show_shapes=True)
    assert (tmp_path / "m.dot").read_text() == model_to_dot(model, show_shapes=True).source == result.source
    assert result.renderer is None
    keras.utils.plot_model(model, tmp_path / "m.gv")
    assert (tmp_path / "m.gv").read_text().startswith("digraph functional {")


def test_no_renderer_error_says_what_to_install_and_writes_the_dot_beside(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "available_renderers", lambda preferred=None: [])
    model = mnist_mlp()
    with pytest.raises(GraphvizUnavailableError) as caught:
        keras.utils.plot_model(model, tmp_path / "model.png")
    message = str(caught.value)
    assert isinstance(caught.value, ImportError)  # like Keras' error for a missing Graphviz
    assert "pip install graphviz-pure" in message and "graphviz.org" in message
    assert f"The DOT source was written to {tmp_path / 'model.dot'}" in message
    assert caught.value.source == model_to_dot(model).source
    assert caught.value.dot_path == str(tmp_path / "model.dot")
    assert files_in(tmp_path) == ["model.dot"]
    assert (tmp_path / "model.dot").read_text() == caught.value.source


@needs_pip_renderer
def test_pdf_without_system_dot_is_a_clear_error(tmp_path):
    with pytest.raises(GraphvizUnavailableError, match=r"graphviz-pure writes png, svg\); pdf needs Graphviz's `dot`"):
        keras.utils.plot_model(mnist_mlp(), tmp_path / "m.pdf", renderer="graphviz-pure")
    assert files_in(tmp_path) == ["m.dot"]


def test_unknown_renderer_and_extension(tmp_path):
    with pytest.raises(GraphvizUnavailableError, match="renderer 'no-such-dot' not found"):
        keras.utils.plot_model(mnist_mlp(), tmp_path / "m.png", renderer="no-such-dot")
    with pytest.raises(ValueError, match=r"unsupported file extension \.jpg; use one of \.png, \.svg, \.pdf, \.dot"):
        keras.utils.plot_model(mnist_mlp(), tmp_path / "m.jpg")
    assert render.format_of("model") == "png"  # Keras' default for a name without extension
    assert files_in(tmp_path) == ["m.dot"]


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for a broken renderer")
def test_a_failing_renderer_leaves_the_old_file_untouched(tmp_path):
    program = tmp_path / "broken-dot"
    program.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-T?" ]; then echo \'Format: "?" not recognized. Use one of: png svg\' >&2; exit 1; fi\n'
        "echo 'Error: syntax error in line 1' >&2\nexit 3\n"
    )
    program.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.png").write_bytes(b"old picture")
    with pytest.raises(RenderError, match="broken-dot failed to render png: Error: syntax error in line 1"):
        keras.utils.plot_model(mnist_mlp(), out / "m.png", renderer=str(program))
    assert files_in(out) == ["m.png"]  # no temporary file left behind
    assert (out / "m.png").read_bytes() == b"old picture"


def test_atomic_write_replaces_and_sets_the_usual_mode(tmp_path):
    target = tmp_path / "m.dot"
    target.write_text("old")
    keras.utils.plot_model(mnist_mlp(), target)
    assert target.read_text().startswith("digraph mnist_model {")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert files_in(tmp_path) == ["m.dot"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_to_file_none_shows_inline_svg_without_writing(renderer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = keras.utils.plot_model(mnist_mlp(), to_file=None, show_shapes=True, renderer=renderer)
    assert files_in(tmp_path) == []
    assert result.path is None and result.data is None
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/svg+xml"}
    root = svg_root(bundle["image/svg+xml"].encode())
    # rendered without the dpi scaling (which is for PNG): at dpi=200 Graphviz would scale(2.78 2.78)
    assert root.find("{http://www.w3.org/2000/svg}g").get("transform").startswith("scale(1 1) ")
    assert "dense_2" in svg_texts(root)
    assert result._repr_svg_() == bundle["image/svg+xml"]
    assert result.pipe("dot").decode() == result.source


@needs_pip_renderer
def test_written_png_is_what_jupyter_shows(tmp_path):
    result = keras.utils.plot_model(mnist_mlp(), tmp_path / "m.png")
    bundle = result._repr_mimebundle_()
    assert bundle["image/png"] == (tmp_path / "m.png").read_bytes()
    assert repr(result).startswith(f"<ModelPlot mnist_model -> {tmp_path / 'm.png'} (rendered by ")
    copy = result.save(tmp_path / "copy.svg")
    svg_root((tmp_path / "copy.svg").read_bytes())
    assert copy._repr_svg_() == (tmp_path / "copy.svg").read_text()


def test_inline_display_without_a_renderer_falls_back_to_text(monkeypatch):
    monkeypatch.setattr(render, "available_renderers", lambda preferred=None: [])
    result = keras.utils.plot_model(mnist_mlp(), to_file=None)
    assert result._repr_mimebundle_() == {"text/plain": "<ModelPlot mnist_model>"}


def long_chain(n: int):
    inputs = keras.Input((16,), name="x")
    x = inputs
    for i in range(n):
        x = layers.Dense(16, name=f"d{i}")(x)
    return keras.Model(inputs, x, name="chain")


@needs_pip_renderer
def test_a_thousand_layers_render_in_seconds_and_deterministically(tmp_path):
    model = long_chain(1000)
    start = time.perf_counter()
    first = keras.utils.plot_model(model, tmp_path / "a.svg", show_shapes=True, renderer="graphviz-pure")
    elapsed = time.perf_counter() - start
    assert elapsed < 15, f"took {elapsed:.1f} s"
    second = keras.utils.plot_model(model, tmp_path / "b.svg", show_shapes=True, renderer="graphviz-pure")
    assert first.data == second.data  # same layout, same bytes
    assert len(parse_dot(first.source).edges) == 1000
    with pytest.warns(UserWarning, match=r"PNG resolution lowered from 200 to \d+ dpi"):
        result = keras.utils.plot_model(model, tmp_path / "c.png", renderer="graphviz-pure")
    width, height = png_size(result.data)
    assert max(width, height) <= plot.MAX_PNG_SIDE and width * height <= plot.MAX_PNG_PIXELS
    assert height > 20_000  # lowered only as far as needed


@pytest.mark.skipif(SYSTEM_DOT is None and PIP_RENDERER is None, reason="no Graphviz renderer is installed")
def test_a_renderer_that_cannot_route_orthogonal_edges_gets_curved_ones(tmp_path):
    """Debian's dot 2.43 aborts on some small layouts with ``splines=ortho`` ("newtrap:
    Trapezoid-table overflow"); the plot is drawn with ``splines=spline`` and says so once. The
    renderer here is a dot that fails exactly on orthogonal edges, in front of a real one."""
    real = SYSTEM_DOT or PIP_RENDERER
    fussy = tmp_path / "fussy-dot"
    fussy.write_text(
        "#!/bin/sh\n"
        'src=$(cat)\ncase "$src" in *"splines=ortho"*)\n'
        '  echo "newtrap: Trapezoid-table overflow 181" >&2; exit 1;;\nesac\n'
        f'printf "%s" "$src" | exec "{real}" "$@"\n'
    )
    fussy.chmod(0o755)
    for name in ("m.svg", "m.png"):
        with pytest.warns(
            UserWarning,
            match=r"could not route the plot of 'mnist_model' with orthogonal edges \(.*"
            r"Trapezoid-table overflow 181\); it is drawn with curved ones",
        ) as caught:
            drawn = keras.utils.plot_model(mnist_mlp(), to_file=tmp_path / name, renderer=str(fussy))
        assert len(caught) == 1 and drawn.renderer == "fussy-dot" and drawn.dot.graph_attr["splines"] == "ortho"
        assert (tmp_path / name).stat().st_size > 100
