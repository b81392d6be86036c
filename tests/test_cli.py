"""The ``irtool`` command line (``irtool.cli.main``), mostly run in-process."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

import irtool.loading
import irtool.runtime.ort
from irtool.cli import main

from ._model_sources import TINY, TWO_MODELS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


UNLOWERABLE = """
import irtool as keras
from irtool import layers
from irtool.ops import core


class Twice(core.Primitive):
    name = "twice"

    def infer(self, specs):
        return [specs[0]]

    def forward(self, x):
        return 2 * x

    def to_onnx(self, ctx, ins, outs):
        ctx.fail(self, "there is no ONNX rule for it")


class TwiceLayer(layers.Layer):
    def call(self, x):
        return core.apply(Twice(), [x])[0]


inputs = keras.Input((4,))
model = keras.Model(inputs, TwiceLayer()(inputs), name="twice_model")
"""


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write(tmp_path, "tiny.py", TINY)


# -- export: success paths -----------------------------------------------------------------------------
def test_export_defaults_to_stem_onnx_in_the_current_folder(tiny, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["export", str(tiny)]) == 0
    out = capsys.readouterr()
    assert out.out == "exported tiny -> tiny.onnx (opset 21, 1 node, 15 params)\n"
    assert out.err.startswith("irtool: note: model 'tiny' has freshly initialised weights") and out.err.count("\n") == 1
    proto = onnx.load(work / "tiny.onnx")
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["out"]
    assert files_under(work) == ["tiny.onnx"]
    umask = os.umask(0)
    os.umask(umask)
    if os.name == "posix":  # the usual file mode, not mkstemp's private 0o600
        assert (work / "tiny.onnx").stat().st_mode & 0o777 == 0o666 & ~umask


def test_export_to_a_new_folder_with_opset(tiny, tmp_path, capsys):
    out = tmp_path / "out" / "nested" / "t.onnx"
    assert main(["export", str(tiny), "-o", str(out), "--opset", "17"]) == 0
    assert f"-> {out} (opset 17," in capsys.readouterr().out
    assert [o.version for o in onnx.load(out).opset_import] == [17]
    assert files_under(tmp_path / "out") == ["nested/t.onnx"]


def test_export_into_an_existing_folder(tiny, tmp_path, capsys):
    (tmp_path / "dist").mkdir()
    assert main(["export", str(tiny), "-o", str(tmp_path / "dist")]) == 0
    assert files_under(tmp_path / "dist") == ["tiny.onnx"]


def test_export_overwrites_an_existing_file(tiny, tmp_path, capsys):
    out = tmp_path / "t.onnx"
    out.write_bytes(b"old")
    assert main(["export", str(tiny), "-o", str(out)]) == 0
    assert onnx.load(out).graph.name == "tiny"


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["--object", "first"], "first"),
        (["--object", "alias"], "second"),
        (["--object", "make"], "made"),
    ],
)
def test_export_object(argv, name, tmp_path, capsys):
    source = write(tmp_path, "two.py", TWO_MODELS)
    assert main(["export", str(source), "-o", str(tmp_path / "m.onnx"), *argv]) == 0
    assert capsys.readouterr().out.startswith(f"exported {name} -> ")
    assert onnx.load(tmp_path / "m.onnx").graph.name == name


@pytest.mark.parametrize("factory", ["build_model", "get_model"])
def test_export_factory_function(factory, tmp_path, capsys):
    source = write(
        tmp_path,
        "factory.py",
        f"""
        import irtool as keras
        from irtool import layers

        def {factory}():
            inputs = keras.Input((4,))
            return keras.Model(inputs, layers.Dense(2)(inputs), name="built")
        """,
    )
    assert main(["export", str(source), "-o", str(tmp_path / "m.onnx")]) == 0
    assert capsys.readouterr().out.startswith("exported built -> ")


def test_export_finds_the_only_model_and_prefers_model(tmp_path, capsys):
    only = write(tmp_path, "only.py", TINY.replace("model = ", "net = "))
    assert main(["export", str(only), "-o", str(tmp_path / "a.onnx")]) == 0
    assert capsys.readouterr().out.startswith("exported tiny -> ")
    both = write(tmp_path, "both.py", TINY + 'other = keras.Model(inputs, inputs, name="other")\n')
    assert main(["export", str(both), "-o", str(tmp_path / "b.onnx")]) == 0
    assert capsys.readouterr().out.startswith("exported tiny -> ")


def test_model_file_imports_its_neighbours_and_skips_main(tmp_path, capsys):
    write(tmp_path, "blocks.py", "UNITS = 7\n")
    source = write(
        tmp_path,
        "uses.py",
        TINY.replace("Dense(3", "Dense(blocks.UNITS")
        + 'import blocks\nif __name__ == "__main__":\n    raise SystemExit("main block ran")\n',
    )
    source.write_text("import blocks\n" + source.read_text())
    path_before = list(sys.path)
    assert main(["export", str(source), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "35 params" in capsys.readouterr().out
    assert sys.path == path_before


def test_export_check_passes(tiny, tmp_path, capsys):
    assert main(["export", str(tiny), "-o", str(tmp_path / "t.onnx"), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("output out: max |diff| ")
    assert lines[0].endswith(": ok")
    assert lines[1].startswith("check: ONNX Runtime agrees with NumPy on 1 output")
    assert lines[2].startswith("exported tiny -> ")


MASKED_RNN = """
import irtool as keras
from irtool import layers

tokens = keras.Input((None,), dtype="int32", name="tokens")
h = layers.Embedding(5, 3, mask_zero=True)(tokens)
h = layers.Bidirectional(layers.GRU(3, return_sequences=True))(h)
model = keras.Model(tokens, layers.LSTM(2, go_backwards=True)(h), name="masked")
"""


def test_export_check_holds_for_masks_with_holes(tmp_path, capsys):
    """--check's random tokens hold zeros anywhere (left padding, holes): the export is exact."""
    out = tmp_path / "m.onnx"
    assert main(["export", str(write(tmp_path, "masked.py", MASKED_RNN)), "-o", str(out), "--check"]) == 0
    assert "check: ONNX Runtime agrees with NumPy on 1 output" in capsys.readouterr().out
    (tokens,) = irtool.runtime.ort.random_inputs(str(out), batch_size=3)
    mask = tokens != 0
    assert (mask[:, 1:] & ~mask[:, :-1]).any()  # some row's mask is not a prefix


def test_export_check_failure_writes_nothing(tiny, tmp_path, capsys, monkeypatch):
    def disagree(path, reference, **kwargs):
        return [
            {
                "name": "out",
                "shape": (None, 3),
                "dtype": "float32",
                "max_abs_diff": 0.5,
                "max_rel_diff": 1.0,
                "ok": False,
            }
        ]

    monkeypatch.setattr(irtool.runtime.ort, "check_parity", disagree)
    out = tmp_path / "out" / "t.onnx"
    assert main(["export", str(tiny), "-o", str(out), "--check"]) == 1
    captured = capsys.readouterr()
    assert "output out: max |diff| 0.5, max rel 1 (float32, batch sizes 1, 3): FAILED" in captured.out
    assert captured.err.startswith("irtool: error: ONNX Runtime disagrees with NumPy on out")
    assert captured.err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert files_under(tmp_path) == ["tiny.py"]


@pytest.mark.parametrize("example", ["mnist_mlp", "multi_io", "custom_layer"])
def test_examples_export_and_check(example, tmp_path, capsys):
    out = tmp_path / "out" / f"{example}.onnx"
    assert main(["export", str(EXAMPLES / f"{example}.py"), "-o", str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert "FAILED" not in text and ": ok" in text
    onnx.checker.check_model(onnx.load(out), full_check=True)


def test_the_readme_command_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(EXAMPLES / "mnist_mlp.py"), "-o", "out/mnist.onnx", "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("output dense_2: max |diff| ") and lines[0].endswith(": ok")
    assert lines[-1] == "exported mnist_model -> out/mnist.onnx (opset 21, 5 nodes, 55,050 params)"


@pytest.mark.parametrize("example", ["mnist_mlp", "multi_io", "custom_layer"])
def test_examples_run_as_scripts(example, capsys):
    runpy.run_path(str(EXAMPLES / f"{example}.py"), run_name="__main__")
    assert capsys.readouterr().out.strip()


def test_python_dash_m_irtool(tiny, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "irtool", "export", str(tiny), "-o", "t.onnx"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported tiny -> t.onnx (opset 21")
    assert (tmp_path / "t.onnx").exists()
    done = subprocess.run(
        [sys.executable, "-m", "irtool", "export", "missing.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr == "irtool: error: no such file: missing.py\n"


# -- summary -------------------------------------------------------------------------------------------
def test_summary(tiny, capsys):
    assert main(["summary", str(tiny), "--show-trainable", "--line-length", "90"]) == 0
    text = capsys.readouterr().out
    assert 'Model: "tiny"' in text
    assert "Trainable" in text
    assert "15" in text


def test_summary_passes_its_options(tiny, capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr(irtool.Model, "summary", lambda self, **kwargs: seen.update(kwargs, name=self.name))
    assert main(["summary", str(tiny), "--expand-nested", "--line-length", "70"]) == 0
    assert seen == {"name": "tiny", "line_length": 70, "expand_nested": True, "show_trainable": False}


# -- errors --------------------------------------------------------------------------------------------
FAILURES = {
    "missing": ("missing.py", [], "no such file: "),
    "keras": ("saved.keras", [], "no such file: "),
    "syntax": ("def broken(:\n", [], "syntax error in "),
    "raises": ("import irtool\nx = 1\ny = x / 0\n", [], ", line 3 raised ZeroDivisionError: division by zero"),
    "exits": ("import sys\nsys.exit(3)\n", [], "called sys.exit(3) while being loaded"),
    "no_model": ("x = 1\n", [], "no model found in "),
    "ambiguous": (TWO_MODELS, [], "defines several models (first, second); choose one with --object NAME"),
    "bad_object": (
        TWO_MODELS,
        ["--object", "third"],
        "defines no object named 'third' (models defined: first, second)",
    ),
    "not_a_model": (TWO_MODELS, ["--object", "count"], "count in "),
    "returns_other": (TWO_MODELS, ["--object", "not_a_model"], "not_a_model() in "),
    "needs_args": (TWO_MODELS, ["--object", "needs_args"], "needs_args(units) in "),
    "factory_raises": ("def build_model():\n    raise RuntimeError('no data')\n", [], "raised RuntimeError: no data"),
    "unlowerable": (UNLOWERABLE, [], "export of model 'twice_model' failed: Lowering failed: Cannot lower 'twice'"),
    "bad_opset": (TINY, ["--opset", "5"], "export of model 'tiny' failed: opset 5 is not supported"),
    "subclassed": (
        "import irtool\nclass M(irtool.Model):\n    def call(self, x):\n        return x\nmodel = M()\n",
        [],
        "only functional and Sequential models can be exported",
    ),
    "unbuilt": (
        "import irtool\nmodel = irtool.Sequential([irtool.layers.Dense(2)])\n",
        [],
        "is not built yet",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_export_errors_are_one_clean_line(case, tmp_path, capsys):
    source, extra, message = FAILURES[case]
    if source.endswith((".py", ".keras")):
        path = tmp_path / source
    else:
        path = write(tmp_path, "model.py", source)
    out = tmp_path / "out" / "sub" / "m.onnx"
    assert main(["export", str(path), "-o", str(out), *extra]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("irtool: error: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err + captured.out
    assert message in captured.err
    assert not (tmp_path / "out").exists()
    assert [f for f in files_under(tmp_path) if f != "model.py"] == []


def test_export_error_leaves_no_file_in_an_existing_folder(tmp_path, capsys):
    source = write(tmp_path, "model.py", UNLOWERABLE)
    (tmp_path / "dist").mkdir()
    assert main(["export", str(source), "-o", str(tmp_path / "dist" / "m.onnx")]) == 1
    assert "Lowering failed" in capsys.readouterr().err
    assert files_under(tmp_path / "dist") == []


def test_summary_errors_are_clean(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nope.py")]) == 1
    assert capsys.readouterr().err == f"irtool: error: no such file: {tmp_path / 'nope.py'}\n"


@pytest.mark.parametrize(
    "argv", [[], ["export"], ["frobnicate", "x.py"], ["export", "x.py", "--opset", "abc"], ["export", "x.py", "--nope"]]
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("irtool: error: ") and err.count("\n") == 1


def test_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "export" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("irtool ")


def test_debug_shows_the_traceback(tmp_path, capsys):
    source = write(tmp_path, "model.py", "import irtool\nx = 1\ny = x / 0\n")
    assert main(["export", str(source), "--debug", "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert 'model.py", line 3' in err
    assert err.splitlines()[-1].startswith("irtool: error: running ")
    assert files_under(tmp_path) == ["model.py"]


def test_debug_shows_the_export_traceback(tmp_path, capsys):
    source = write(tmp_path, "model.py", UNLOWERABLE)
    assert main(["export", str(source), "--debug", "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ExportError" in err
    assert files_under(tmp_path) == ["model.py"]


# -- plot ----------------------------------------------------------------------------------------------
needs_pip_renderer = pytest.mark.skipif(
    __import__("irtool.viz.render", fromlist=["render"])._pip_renderer_path() is None,
    reason="graphviz-pure is not installed",
)

NESTED = """
import irtool as keras
from irtool import layers

x = keras.Input((4,), name="x")
inner = keras.Model(x, layers.Dense(3, activation="relu", name="hidden")(x), name="inner")
y = keras.Input((4,), name="y")
model = keras.Model(y, layers.Dense(2, name="out")(inner(y)), name="outer")
"""


@needs_pip_renderer
def test_plot_defaults_to_stem_png_in_the_current_folder(tiny, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["plot", str(tiny), "--renderer", "graphviz-pure"]) == 0
    assert capsys.readouterr().out == "plotted model 'tiny' -> tiny.png (png, rendered by graphviz-pure)\n"
    assert files_under(work) == ["tiny.png"]
    assert (work / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_dot_output_matches_model_to_dot_with_every_option(tmp_path, capsys):
    import irtool

    source = write(tmp_path, "nested.py", NESTED)
    out = tmp_path / "pics" / "new" / "m.dot"
    argv = ["plot", str(source), "-o", str(out), "--show-shapes", "--show-dtype", "--show-layer-activations"]
    argv += ["--show-trainable", "--expand-nested", "--rankdir", "LR", "--dpi", "96"]
    assert main(argv) == 0
    assert capsys.readouterr().out == f"plotted model 'outer' -> {out} (dot)\n"
    model = irtool.loading.load_model(str(source))
    expected = irtool.utils.model_to_dot(
        model,
        show_shapes=True,
        show_dtype=True,
        show_layer_activations=True,
        show_trainable=True,
        expand_nested=True,
        rankdir="LR",
        dpi=96,
    ).source
    assert out.read_text() == expected
    assert "subgraph cluster_inner {" in expected and "Activation: <b>relu</b>" in expected


@needs_pip_renderer
def test_plot_svg_into_a_folder_with_object(tmp_path, capsys):
    source = write(tmp_path, "two.py", TWO_MODELS)
    folder = tmp_path / "pics"
    folder.mkdir()
    argv = ["plot", str(source), "--object", "make", "-o", str(folder), "--show-shapes", "--renderer", "graphviz-pure"]
    assert main(argv) == 0
    out = folder / "two.png"
    assert capsys.readouterr().out == f"plotted model 'made' -> {out} (png, rendered by graphviz-pure)\n"
    assert main(["plot", str(source), "--object", "first", "-o", str(folder / "first.svg")]) == 0
    text = (folder / "first.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<title>first</title>" in text and ">dense<" in text


@needs_pip_renderer
def test_plot_an_onnx_file_irtool_exported(tiny, tmp_path, capsys):
    onnx_path = tmp_path / "tiny.onnx"
    assert main(["export", str(tiny), "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    out = tmp_path / "tiny_onnx.svg"
    assert main(["plot", str(onnx_path), "-o", str(out), "--show-dtype", "--renderer", "graphviz-pure"]) == 0
    assert capsys.readouterr().out == f"plotted tiny.onnx -> {out} (svg, rendered by graphviz-pure)\n"
    text = out.read_text()
    assert ">Gemm<" in text and ">(batch, 3)<" in text and ">x<" in text


def test_plot_an_onnx_file_made_with_helper(tmp_path, capsys):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["b"], name="act"), helper.make_node("Neg", ["b"], ["c"])],
        "two_ops",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, "n"])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    out = tmp_path / "two.dot"
    assert main(["plot", str(path), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("digraph two_ops {")
    assert "input0 -> node0" in text and "node0 -> node1" in text and "node1 -> output0" in text
    assert text.count("(2, n)") == 4  # the input, then from shape inference Relu's and Neg's outputs and the output


@needs_pip_renderer
def test_plot_a_saved_keras_model(tmp_path, capsys):
    import irtool as keras
    from irtool import layers

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, layers.Dense(3, name="out")(inputs), name="saved")
    model.save(str(tmp_path / "saved.keras"))
    out = tmp_path / "saved.dot"
    assert main(["plot", str(tmp_path / "saved.keras"), "-o", str(out), "--show-shapes"]) == 0
    assert capsys.readouterr().out == f"plotted model 'saved' -> {out} (dot)\n"
    assert "x -> out" in out.read_text() and "(None, 3)" in out.read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-o", "m.jpg"], "unsupported file extension .jpg; use one of .png, .svg, .pdf, .dot"),
        (["--object", "nope"], "defines no object named 'nope'"),
    ],
)
def test_plot_errors_are_one_clean_line(extra, message, tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(tiny), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("irtool: error: ") and err.count("\n") == 1 and message in err
    assert files_under(tmp_path) == ["tiny.py"]


def test_plot_onnx_errors(tiny, tmp_path, capsys):
    assert main(["export", str(tiny), "-o", str(tmp_path / "t.onnx")]) == 0
    capsys.readouterr()
    for argv, message in [
        (["--expand-nested"], "--expand-nested applies to models, not to ONNX files"),
        (["--show-trainable"], "--show-trainable applies to models, not to ONNX files"),
        (["--object", "model"], "--object picks a model in a Python file;"),
    ]:
        assert main(["plot", str(tmp_path / "t.onnx"), "-o", str(tmp_path / "t.svg"), *argv]) == 1
        err = capsys.readouterr().err
        assert err.startswith("irtool: error: ") and err.count("\n") == 1 and message in err
    (tmp_path / "bad.onnx").write_bytes(b"\x08\xff\xff garbage")
    assert main(["plot", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "b.svg")]) == 1
    assert "bad.onnx is not a readable ONNX model" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "none.onnx")]) == 1
    assert capsys.readouterr().err == f"irtool: error: no such file: {tmp_path / 'none.onnx'}\n"
    assert files_under(tmp_path) == ["bad.onnx", "t.onnx", "tiny.py"]


@needs_pip_renderer
def test_plot_pdf_without_system_dot_writes_the_dot_beside(tiny, tmp_path, capsys):
    out = tmp_path / "new" / "m.pdf"
    assert main(["plot", str(tiny), "-o", str(out), "--renderer", "graphviz-pure"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("irtool: error: Cannot write ") and err.count("\n") == 1
    assert "pdf needs Graphviz's `dot`" in err and f"The DOT source was written to {tmp_path / 'new' / 'm.dot'}" in err
    assert files_under(tmp_path) == ["new/m.dot", "tiny.py"]


def test_plot_render_failure_removes_the_folders_it_made(tiny, tmp_path, capsys):
    if os.name == "nt":
        pytest.skip("a shell script stands in for a broken renderer")
    program = tmp_path / "broken"
    program.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-T?" ]; then echo \'Format: "?" not recognized. Use one of: png\' >&2; exit 1; fi\n'
        "echo 'Error: out of cheese' >&2\nexit 2\n"
    )
    program.chmod(0o755)
    out = tmp_path / "a" / "b" / "m.png"
    assert main(["plot", str(tiny), "-o", str(out), "--renderer", str(program)]) == 1
    err = capsys.readouterr().err
    assert err == f"irtool: error: cannot write {out}: RenderError: broken failed to render png: Error: out of cheese\n"
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "argv",
    [["plot"], ["plot", "x.py", "--dpi", "0"], ["plot", "x.py", "--dpi", "x"], ["plot", "x.py", "--rankdir", "XY"]],
)
def test_plot_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("irtool: error: ") and err.count("\n") == 1


def test_plot_debug_shows_the_traceback(tmp_path, capsys):
    source = write(tmp_path, "model.py", "import irtool\nraise RuntimeError('no model today')\n")
    assert main(["plot", str(source), "--debug", "-o", str(tmp_path / "m.png")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "no model today" in err
    assert err.splitlines()[-1].startswith("irtool: error: running ")
    assert files_under(tmp_path) == ["model.py"]


@needs_pip_renderer
def test_plot_warnings_are_one_line_each(tmp_path, capsys):
    source = write(
        tmp_path,
        "chain.py",
        """
        import irtool as keras
        from irtool import layers

        x = inputs = keras.Input((4,))
        for _ in range(300):
            x = layers.Dense(4)(x)
        model = keras.Model(inputs, x, name="chain")
        """,
    )
    out = tmp_path / "chain.png"
    assert main(["plot", str(source), "-o", str(out), "--renderer", "graphviz-pure", "--dpi", "600"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("irtool: warning: The plot of 'chain' is ") and captured.err.count("\n") == 1
    assert "PNG resolution lowered from 600 to" in captured.err
    assert captured.out == f"plotted model 'chain' -> {out} (png, rendered by graphviz-pure)\n"


MASKED_TANH = """
import irtool as keras
from irtool import layers

tokens = keras.Input((None,), dtype="int32", name="tokens")
h = layers.GlobalAveragePooling1D()(layers.Embedding(7, 4, mask_zero=True)(tokens))
model = keras.Model(tokens, layers.Dense(3, activation="tanh", name="scores")(h), name="masked_tanh")
"""


def test_export_check_names_a_real_disagreement(tmp_path, capsys, monkeypatch):
    """A Tanh exported 0.1% too large: the failure names the output, the input set, the largest
    difference, and a float64 run shows it is no rounding."""
    from irtool.ops.elementwise import TANH

    def tanh_a_bit_off(ctx, ins, outs):
        (y,) = ctx.node("Tanh", ins)
        ctx.node("Mul", [y, ctx.const(np.float32(1.001))], outs)

    monkeypatch.setattr(TANH, "to_onnx", tanh_a_bit_off)
    out = tmp_path / "m.onnx"
    assert main(["export", str(write(tmp_path, "masked.py", MASKED_TANH)), "-o", str(out), "--check"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    assert line.startswith("output scores: max |diff| ") and ": FAILED: largest |diff| " in line
    assert "padding: none, right, left, a hole, an all-padding row" in line
    assert "a real disagreement (against a float64 NumPy run: ONNX Runtime is off by " in line
    err = captured.err
    assert err.startswith("irtool: error: ONNX Runtime disagrees with NumPy on scores (largest |diff| ")
    assert re.search(
        r" at batch [13], length [15](, [a-z -]+)?, a real disagreement\) \(atol 1e-05, rtol 1e-05\); ", err
    )
    assert "loosen" not in err and err.count("\n") == 1
    assert files_under(tmp_path) == ["masked.py"]


def test_export_check_calls_float32_noise_rounding(tmp_path, capsys):
    source = write(
        tmp_path,
        "deep.py",
        """
        import irtool as keras
        from irtool import layers

        x = inputs = keras.Input((16,), name="x")
        for _ in range(12):
            x = layers.Dense(16, activation="tanh")(x)
        model = keras.Model(inputs, layers.Dense(4, name="out")(x), name="deep")
        """,
    )
    argv = ["export", str(source), "-o", str(tmp_path / "d.onnx"), "--check", "--atol", "1e-9", "--rtol", "0"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "(float32, batch sizes 1, 3): FAILED: largest |diff| " in captured.out
    assert "; float rounding (against a float64 NumPy run" in captured.out
    assert ", float rounding) (atol 1e-09, rtol 0); only float rounding: loosen --atol/--rtol" in captured.err
    assert files_under(tmp_path) == ["deep.py"]
