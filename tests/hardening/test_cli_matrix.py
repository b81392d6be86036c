"""The CLI under bad input: every command, one row per case (see ``matrix.py`` for what each row checks).

Rows run in this process against one workspace of good and bad files; a few go through
``python -m irtool`` to show that a real process prints one line and no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import irtool as keras
from irtool import layers
from irtool.serving import server

from .._model_sources import TINY, TWO_MODELS
from .matrix import CliCase, check_cli_failure, is_root, run_cli

ROOT = Path(__file__).resolve().parents[2]

BAD_SOURCES = {
    "empty.py": "",
    "syntax.py": "import irtool\ndef broken(:\n",
    "raises.py": "import irtool\nx = 1\ny = x / 0\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "nomodel.py": "x = 1\n",
    "two.py": TWO_MODELS,
    "tiny.py": TINY,
    "imports_missing.py": "import irtool\nimport no_such_module_for_irtool\n",
    "factory_raises.py": "def build_model():\n    raise RuntimeError('no data')\n",
    "factory_returns_int.py": "def build_model():\n    return 42\n",
    "bad_layer.py": "import irtool\nmodel = irtool.Sequential([irtool.Input((3,)), irtool.layers.Dense(-2)])\n",
    "shape_mismatch.py": (
        "import irtool\nfrom irtool import layers\na = irtool.Input((3,))\nb = irtool.Input((4,))\n"
        "model = irtool.Model([a, b], layers.Add()([a, b]))\n"
    ),
    "unbuilt.py": "import irtool\nmodel = irtool.Sequential([irtool.layers.Dense(2)])\n",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    for name, source in BAD_SOURCES.items():
        (folder / name).write_text(source)
    (folder / "binary.py").write_bytes(bytes(range(256)) * 4)
    (folder / "latin1.py").write_bytes(b"x = '\xe9\xff'\n")
    (folder / "folder.py").mkdir()
    (folder / "afile").write_text("a file, not a folder")
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, layers.Dense(3, name="out")(inputs), name="tiny")
    model.export(folder / "tiny.onnx")
    model.save(folder / "tiny.keras")
    model.save_weights(folder / "tiny.weights.h5")
    good = (folder / "tiny.onnx").read_bytes()
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "text.onnx").write_text("not a model")
    (folder / "cut.onnx").write_bytes(good[: len(good) // 3])
    (folder / "binary.onnx").write_bytes(os.urandom(0) + bytes(range(256)) * 8)
    (folder / "empty.keras").write_bytes(b"")
    (folder / "text.keras").write_text("not an archive")
    (folder / "cut.keras").write_bytes((folder / "tiny.keras").read_bytes()[:200])
    (folder / "garbage.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    (folder / "model.h5").write_bytes(b"")
    np.save(folder / "x.npy", np.zeros((2, 4), "float32"))
    np.save(folder / "f64.npy", np.zeros((2, 4), "float64"))
    np.save(folder / "wide.npy", np.zeros((2, 9), "float32"))
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    (folder / "bad.json").write_text("{not json")
    (folder / "list.json").write_text("[[1, 2], [3]]")
    (folder / "strings.json").write_text('{"x": [["a", "b", "c", "d"]]}')
    (folder / "empty_repo").mkdir()
    return folder


def _(*argv: str):
    """argv with ``{d}`` standing for the workspace folder."""
    return lambda d: [a.replace("{d}", str(d)) for a in argv]


# fmt: off
EXPORT = {
    "missing file": CliCase(_("export", "{d}/none.py", "-o", "{d}/o/m.onnx"), 1, ("no such file: ", "none.py")),
    "empty file": CliCase(_("export", "{d}/empty.py", "-o", "{d}/o/m.onnx"), 1, ("no model found in", "empty.py")),
    "binary file": CliCase(_("export", "{d}/binary.py", "-o", "{d}/o/m.onnx"), 1, ("binary.py",)),
    "latin-1 file": CliCase(_("export", "{d}/latin1.py", "-o", "{d}/o/m.onnx"), 1, ("latin1.py",)),
    "syntax error": CliCase(_("export", "{d}/syntax.py", "-o", "{d}/o/m.onnx"), 1, ("syntax error in", "syntax.py, line 2")),
    "exception in model.py": CliCase(_("export", "{d}/raises.py"), 1, ("raises.py, line 3 raised ZeroDivisionError",)),
    "sys.exit in model.py": CliCase(_("export", "{d}/exits.py"), 1, ("called sys.exit(3)",)),
    "import error in model.py": CliCase(_("export", "{d}/imports_missing.py"), 1, ("ModuleNotFoundError", "no_such_module_for_irtool")),
    "no model": CliCase(_("export", "{d}/nomodel.py"), 1, ("no model found in", "--object NAME")),
    "several models": CliCase(_("export", "{d}/two.py"), 1, ("several models (first, second)", "--object NAME")),
    "unknown --object": CliCase(_("export", "{d}/two.py", "--object", "third"), 1, ("no object named 'third'", "first, second")),
    "--object not a model": CliCase(_("export", "{d}/two.py", "--object", "count"), 1, ("count in", "int, not a model")),
    "--object needs arguments": CliCase(_("export", "{d}/two.py", "--object", "needs_args"), 1, ("needs_args(units)", "without arguments")),
    "factory raises": CliCase(_("export", "{d}/factory_raises.py"), 1, ("build_model()", "RuntimeError: no data")),
    "factory returns int": CliCase(_("export", "{d}/factory_returns_int.py"), 1, ("build_model()", "returned a int, not a model")),
    "bad layer argument": CliCase(_("export", "{d}/bad_layer.py"), 1, ("bad_layer.py, line 2", "units")),
    "incompatible layer call": CliCase(_("export", "{d}/shape_mismatch.py"), 1, ("shape_mismatch.py", "(None, 3)", "(None, 4)")),
    "unbuilt Sequential": CliCase(_("export", "{d}/unbuilt.py", "-o", "{d}/o/m.onnx"), 1, ("is not built yet",)),
    "a folder as model.py": CliCase(_("export", "{d}/folder.py"), 1, ("is a directory",)),
    "legacy .h5 model": CliCase(_("export", "{d}/model.h5"), 1, ("(.h5 files) is not supported",)),
    "an ONNX file": CliCase(_("export", "{d}/tiny.onnx"), 1, ("(.onnx files) is not supported",)),
    "empty .keras": CliCase(_("export", "{d}/empty.keras", "-o", "{d}/o/m.onnx"), 1, ("cannot load", "empty.keras")),
    "text .keras": CliCase(_("export", "{d}/text.keras"), 1, ("not a `.keras` archive",)),
    "truncated .keras": CliCase(_("export", "{d}/cut.keras"), 1, ("cut.keras",)),
    "--object on .keras": CliCase(_("export", "{d}/tiny.keras", "--object", "m"), 1, ("--object picks a model in a Python file",)),
    "opset too old": CliCase(_("export", "{d}/tiny.py", "--opset", "5", "-o", "{d}/o/m.onnx"), 1, ("opset 5 is not supported",)),
    "opset too new": CliCase(_("export", "{d}/tiny.py", "--opset", "99", "-o", "{d}/o/m.onnx"), 1, ("opset 99",)),
    "opset negative": CliCase(_("export", "{d}/tiny.py", "--opset", "-1", "-o", "{d}/o/m.onnx"), 1, ("opset -1 is not supported", "[13,")),
    "opset not a number": CliCase(_("export", "{d}/tiny.py", "--opset", "abc"), 2, ("--opset", "'abc'")),
    "output under a file": CliCase(_("export", "{d}/tiny.py", "-o", "{d}/afile/m.onnx"), 1, ("afile",)),
    "output in /proc": CliCase(_("export", "{d}/tiny.py", "-o", "/proc/irtool-hardening/m.onnx"), 1, ("/proc/irtool-hardening",)),
    "weights missing": CliCase(_("export", "{d}/tiny.py", "--weights", "{d}/none.weights.h5"), 1, ("no such weights file",)),
    "weights not h5": CliCase(_("export", "{d}/tiny.py", "--weights", "{d}/x.npy"), 1, ("--weights expects a .weights.h5 file",)),
    "weights garbage": CliCase(_("export", "{d}/tiny.py", "--weights", "{d}/garbage.weights.h5"), 1, ("cannot load the weights", "garbage.weights.h5")),
    "weights of another model": CliCase(_("export", "{d}/two.py", "--object", "second", "--weights", "{d}/tiny.weights.h5"), 1, ("cannot load the weights", "second")),
    "negative --atol": CliCase(_("export", "{d}/tiny.py", "--check", "--atol", "-1"), 2, ("--atol", "-1")),
    "nan --rtol": CliCase(_("export", "{d}/tiny.py", "--check", "--rtol", "nan"), 2, ("--rtol", "nan")),
    "--name without --triton-repo": CliCase(_("export", "{d}/tiny.py", "--name", "m"), 2, ("add --triton-repo DIR",)),
    "--max-queue-delay-us without batching": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/r", "--max-queue-delay-us", "5"), 2, ("add --dynamic-batching",)),
    "negative --max-batch-size": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/r", "--max-batch-size", "-1"), 2, ("--max-batch-size", "-1")),
    "zero --version": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/r", "--version", "0"), 2, ("--version", "'0'")),
    "zero --instances": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/r", "--instances", "0"), 2, ("--instances", "'0'")),
    "--kserve-yaml without --storage-uri": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/r", "--kserve-yaml", "{d}/k.yaml"), 2, ("--storage-uri",)),
    "--triton-repo is a file": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/afile"), 1, ("afile",)),
    "--triton-repo with -o": CliCase(_("export", "{d}/tiny.py", "--triton-repo", "{d}/r", "-o", "{d}/m.onnx"), 2, ("-o",)),
    "unknown flag": CliCase(_("export", "{d}/tiny.py", "--frobnicate"), 2, ("unrecognized arguments: --frobnicate",)),
    "no file": CliCase(_("export"), 2, ("the following arguments are required: file",)),
}

SUMMARY = {
    "missing file": CliCase(_("summary", "{d}/none.py"), 1, ("no such file: ",)),
    "empty file": CliCase(_("summary", "{d}/empty.py"), 1, ("no model found in",)),
    "binary file": CliCase(_("summary", "{d}/binary.py"), 1, ("binary.py",)),
    "syntax error": CliCase(_("summary", "{d}/syntax.py"), 1, ("syntax error in",)),
    "several models": CliCase(_("summary", "{d}/two.py"), 1, ("several models",)),
    "empty onnx": CliCase(_("summary", "{d}/empty.onnx"), 1, ("empty.onnx",)),
    "text onnx": CliCase(_("summary", "{d}/text.onnx"), 1, ("text.onnx is not a readable ONNX model",)),
    "truncated onnx": CliCase(_("summary", "{d}/cut.onnx"), 1, ("cut.onnx is not a readable ONNX model",)),
    "empty .keras": CliCase(_("summary", "{d}/empty.keras"), 1, ("empty.keras",)),
    "zero --line-length": CliCase(_("summary", "{d}/tiny.py", "--line-length", "0"), 2, ("--line-length", "'0'")),
    "negative --line-length": CliCase(_("summary", "{d}/tiny.py", "--line-length", "-5"), 2, ("--line-length", "'-5'")),
    "word --line-length": CliCase(_("summary", "{d}/tiny.py", "--line-length", "wide"), 2, ("--line-length", "'wide'")),
    "unknown flag": CliCase(_("summary", "{d}/tiny.py", "--frobnicate"), 2, ("--frobnicate",)),
}

PLOT = {
    "missing file": CliCase(_("plot", "{d}/none.py", "-o", "{d}/p/m.png"), 1, ("no such file: ",)),
    "syntax error": CliCase(_("plot", "{d}/syntax.py", "-o", "{d}/p/m.png"), 1, ("syntax error in",)),
    "several models": CliCase(_("plot", "{d}/two.py", "-o", "{d}/p/m.png"), 1, ("several models",)),
    "text onnx": CliCase(_("plot", "{d}/text.onnx", "-o", "{d}/p/m.png"), 1, ("text.onnx is not a readable ONNX model",)),
    "empty .keras": CliCase(_("plot", "{d}/empty.keras", "-o", "{d}/p/m.png"), 1, ("empty.keras",)),
    "unknown image format": CliCase(_("plot", "{d}/tiny.py", "-o", "{d}/p/m.gif"), 1, ("unsupported file extension .gif", ".png, .svg")),
    "output under a file": CliCase(_("plot", "{d}/tiny.py", "-o", "{d}/afile/m.png"), 1, ("afile",)),
    "output in /proc": CliCase(_("plot", "{d}/tiny.py", "-o", "/proc/irtool-hardening/m.dot"), 1, ("/proc/irtool-hardening",)),
    "zero --dpi": CliCase(_("plot", "{d}/tiny.py", "--dpi", "0"), 2, ("--dpi", "'0'")),
    "bad --rankdir": CliCase(_("plot", "{d}/tiny.py", "--rankdir", "XY"), 2, ("--rankdir", "'XY'")),
    "missing --renderer": CliCase(_("plot", "{d}/tiny.py", "-o", "{d}/p/m.png", "--renderer", "{d}/no-dot"), 1, ("renderer", "no-dot' not found", "DOT source was written to"), leaves=("p", "p/m.dot")),
    "failing --renderer": CliCase(_("plot", "{d}/tiny.py", "-o", "{d}/p/m.png", "--renderer", "/bin/false"), 1, ("Cannot write", "m.png", "no renderer here writes png", "DOT source was written to"), leaves=("p", "p/m.dot")),
    "--expand-nested on onnx": CliCase(_("plot", "{d}/tiny.onnx", "-o", "{d}/p/m.png", "--expand-nested"), 1, ("applies to models, not to ONNX files",)),
    "--object on onnx": CliCase(_("plot", "{d}/tiny.onnx", "-o", "{d}/p/m.png", "--object", "m"), 1, ("--object picks a model in a Python file",)),
}

RUN = {
    "empty onnx": CliCase(_("run", "{d}/empty.onnx", "--random"), 1, ("empty.onnx",)),
    "binary onnx": CliCase(_("run", "{d}/binary.onnx", "--random"), 1, ("binary.onnx is not a readable ONNX model",)),
    "a folder": CliCase(_("run", "{d}/folder.py", "--random"), 1, ("is a directory",)),
    "syntax error": CliCase(_("run", "{d}/syntax.py", "--random"), 1, ("syntax error in",)),
    "legacy .h5": CliCase(_("run", "{d}/model.h5", "--random"), 1, ("(.h5 files) is not supported",)),
    "truncated .keras": CliCase(_("run", "{d}/cut.keras", "--random"), 1, ("cut.keras",)),
    "zero --batch-size": CliCase(_("run", "{d}/tiny.onnx", "--random", "--batch-size", "0"), 2, ("--batch-size", "'0'")),
    "negative --batch-size": CliCase(_("run", "{d}/tiny.onnx", "--random", "--batch-size", "-3"), 2, ("--batch-size", "'-3'")),
    "huge --batch-size": CliCase(_("run", "{d}/tiny.onnx", "--random", "--batch-size", "10000000000000"), 1, ("cannot make random inputs", "'x' of shape (10000000000000, 4)", "of memory available")),
    "zero --threads": CliCase(_("run", "{d}/tiny.onnx", "--random", "--threads", "0"), 2, ("--threads", "'0'")),
    "empty --providers": CliCase(_("run", "{d}/tiny.onnx", "--random", "--providers", ","), 2, ("--providers",)),
    "--output-dir is a file": CliCase(_("run", "{d}/tiny.onnx", "--random", "--output-dir", "{d}/afile"), 2, ("is a file, not a folder",)),
    "--output-dir with --benchmark": CliCase(_("run", "{d}/tiny.onnx", "--random", "--benchmark", "3", "--output-dir", "{d}/o"), 2, ("--benchmark prints timings",)),
    "bad json input": CliCase(_("run", "{d}/tiny.onnx", "--input", "x={d}/bad.json", "--output-dir", "{d}/o"), 2, ("bad.json",)),
    "ragged json input": CliCase(_("run", "{d}/tiny.onnx", "--input", "x={d}/list.json", "--output-dir", "{d}/o"), 1, ("input 'x': expected shape (None, 4) float32, received a list", "inhomogeneous")),
    "strings for floats": CliCase(_("run", "{d}/tiny.onnx", "--input", "{d}/strings.json", "--output-dir", "{d}/o"), 1, ("input 'x': expected shape (None, 4) float32, received (1, 4) <U1",)),
    "object npy": CliCase(_("run", "{d}/tiny.onnx", "--input", "x={d}/objects.npy", "--output-dir", "{d}/o"), 2, ("objects.npy",)),
    "wrong width": CliCase(_("run", "{d}/tiny.onnx", "--input", "x={d}/wide.npy", "--output-dir", "{d}/o"), 1, ("'x'", "(2, 9)")),
    "float64 for float32": CliCase(_("run", "{d}/tiny.onnx", "--input", "x={d}/f64.npy", "--output-dir", "{d}/o"), 1, ("float64", "float32")),
    "input named twice": CliCase(_("run", "{d}/tiny.onnx", "--input", "x={d}/x.npy", "--input", "x={d}/x.npy", "--output-dir", "{d}/o"), 2, ("'x'",)),
    "empty input name": CliCase(_("run", "{d}/tiny.onnx", "--input", "={d}/x.npy", "--output-dir", "{d}/o"), 2, ("--input",)),
}

INSPECT = {
    "missing file": CliCase(_("inspect", "{d}/none.onnx"), 1, ("no such file: ",)),
    "empty onnx": CliCase(_("inspect", "{d}/empty.onnx"), 1, ("empty.onnx",)),
    "text onnx": CliCase(_("inspect", "{d}/text.onnx"), 1, ("text.onnx is not a readable ONNX model",)),
    "truncated onnx": CliCase(_("inspect", "{d}/cut.onnx"), 1, ("cut.onnx is not a readable ONNX model",)),
    "syntax error": CliCase(_("inspect", "{d}/syntax.py"), 1, ("syntax error in",)),
    "several models": CliCase(_("inspect", "{d}/two.py"), 1, ("several models",)),
    "text .keras": CliCase(_("inspect", "{d}/text.keras"), 1, ("not a `.keras` archive",)),
    "legacy .h5": CliCase(_("inspect", "{d}/model.h5"), 1, ("(.h5 files) is not supported",)),
    "a folder": CliCase(_("inspect", "{d}/folder.py"), 1, ("is a directory",)),
}

SERVE = {
    "port too large": CliCase(_("serve", "{d}/tiny.onnx", "--port", "70000"), 2, ("--port: expected 0-65535, received 70000",)),
    "negative port": CliCase(_("serve", "{d}/tiny.onnx", "--port", "-1"), 2, ("--port", "-1")),
    "port not a number": CliCase(_("serve", "{d}/tiny.onnx", "--port", "http"), 2, ("--port", "'http'")),
    "missing model": CliCase(_("serve", "{d}/none.onnx", "--port", "0"), 1, ("none.onnx",)),
    "text onnx": CliCase(_("serve", "{d}/text.onnx", "--port", "0"), 1, ("text.onnx",)),
    "syntax error": CliCase(_("serve", "{d}/syntax.py", "--port", "0"), 1, ("syntax error in",)),
    "empty .keras": CliCase(_("serve", "{d}/empty.keras", "--port", "0"), 1, ("empty.keras",)),
    "empty repository": CliCase(_("serve", "{d}/empty_repo", "--port", "0"), 1, ("empty_repo",)),
    "a plain file as repository": CliCase(_("serve", "{d}/afile", "--port", "0"), 1, ("afile",)),
    "same name twice": CliCase(_("serve", "m={d}/tiny.onnx", "m={d}/tiny.onnx", "--port", "0"), 1, ("model 'm' version 1 is given twice",)),
    "empty name": CliCase(_("serve", "={d}/tiny.onnx", "--port", "0"), 1, ("={d}/tiny.onnx: no such file",)),
    "zero --max-batch-size": CliCase(_("serve", "{d}/tiny.onnx", "--max-batch-size", "0"), 2, ("--max-batch-size", "'0'")),
    "zero --instances": CliCase(_("serve", "{d}/tiny.onnx", "--instances", "0"), 2, ("--instances", "'0'")),
    "zero --threads": CliCase(_("serve", "{d}/tiny.onnx", "--threads", "0"), 2, ("--threads", "'0'")),
    "zero --max-request-bytes": CliCase(_("serve", "{d}/tiny.onnx", "--max-request-bytes", "0"), 2, ("--max-request-bytes", "'0'")),
    "unknown provider": CliCase(_("serve", "{d}/tiny.onnx", "--port", "0", "--providers", "cdua"), 2, ("unknown execution provider 'cdua'",)),
    "unset token variable": CliCase(_("serve", "{d}/tiny.onnx", "--auth-token-env", "IRTOOL_HARDENING_UNSET"), 2, ("IRTOOL_HARDENING_UNSET is not set",)),
    "--weights for onnx": CliCase(_("serve", "{d}/tiny.onnx", "--port", "0", "--weights", "{d}/tiny.weights.h5"), 1, ("--weights",)),
    "no model": CliCase(_("serve"), 2, ("required",)),
}

EXTRACT = {
    "missing file": CliCase(_("extract", "{d}/none.onnx", "--outputs", "out", "-o", "{d}/c/cut.onnx"), 1, ("no such ONNX file: ",)),
    "empty onnx": CliCase(_("extract", "{d}/empty.onnx", "--outputs", "out", "-o", "{d}/c/cut.onnx"), 1, ("empty.onnx", "holds no graph")),
    "truncated onnx": CliCase(_("extract", "{d}/cut.onnx", "--outputs", "out", "-o", "{d}/c/cut.onnx"), 1, ("cut.onnx", "is not a readable ONNX model")),
    "text onnx, --list": CliCase(_("extract", "{d}/text.onnx", "--list"), 1, ("text.onnx is not a readable ONNX model",)),
    "syntax error": CliCase(_("extract", "{d}/syntax.py", "--outputs", "out", "-o", "{d}/c/cut.onnx"), 1, ("syntax error in",)),
    "several models": CliCase(_("extract", "{d}/two.py", "--outputs", "out", "-o", "{d}/c/cut.onnx"), 1, ("several models",)),
    "text .keras": CliCase(_("extract", "{d}/text.keras", "--outputs", "out", "-o", "{d}/c/cut.onnx"), 1, ("not a `.keras` archive",)),
    "no --outputs": CliCase(_("extract", "{d}/tiny.onnx", "-o", "{d}/c/cut.onnx"), 2, ("--outputs NAME[,NAME...] is required",)),
    "empty --outputs": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", ",", "-o", "{d}/c/cut.onnx"), 1, ("no outputs to cut at",)),
    "unknown output": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "nope", "-o", "{d}/c/cut.onnx"), 1, ("'nope'",)),
    "unknown input": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--inputs", "nope", "-o", "{d}/c/cut.onnx"), 1, ("'nope'",)),
    "unknown layer": CliCase(_("extract", "{d}/tiny.py", "--outputs", "nope", "-o", "{d}/c/cut.onnx"), 1, ("'nope'",)),
    "--list with --outputs": CliCase(_("extract", "{d}/tiny.onnx", "--list", "--outputs", "out"), 2, ("--list prints the names",)),
    "--object on onnx": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--object", "m", "-o", "{d}/c/cut.onnx"), 2, ("--object applies to model.py and .keras sources",)),
    "--weights on onnx": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--weights", "{d}/tiny.weights.h5", "-o", "{d}/c/cut.onnx"), 2, ("--weights",)),
    "negative --atol": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--check", "--atol", "-1"), 2, ("--atol", "'-1'")),
    "inf --rtol": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--check", "--rtol", "inf"), 2, ("--rtol", "'inf'")),
    "bad --input file": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--check", "--input", "x={d}/bad.npy", "-o", "{d}/c/cut.onnx"), 2, ("bad.npy",)),
    "wrong --input width": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "--check", "--input", "x={d}/wide.npy", "-o", "{d}/c/cut.onnx"), 1, ("--check: input 'x': expected shape (None, 4) float32, received (2, 9) float32", "(axis 1 has size 9, the model wants 4)")),
    "output under a file": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "-o", "{d}/afile/cut.onnx"), 1, ("cannot create the folder", "afile")),
    "output in /proc": CliCase(_("extract", "{d}/tiny.onnx", "--outputs", "out", "-o", "/proc/irtool-hardening/cut.onnx"), 1, ("cannot create the folder /proc/irtool-hardening",)),
}

TOP = {
    "no command": CliCase(_(), 2, ("required",)),
    "unknown command": CliCase(_("frobnicate"), 2, ("'frobnicate'",)),
}
# fmt: on

FAMILIES = {
    "export": EXPORT,
    "summary": SUMMARY,
    "plot": PLOT,
    "run": RUN,
    "inspect": INSPECT,
    "extract": EXTRACT,
    "serve": SERVE,
    "top": TOP,
}
CASES = [(family, name) for family, table in FAMILIES.items() for name in table]


@pytest.fixture
def no_server(monkeypatch):
    """A serve case that got as far as starting a server failed the test instead of blocking it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the server was started")

    monkeypatch.setattr(server, "run", refuse)


@pytest.mark.parametrize("family, name", CASES, ids=[f"{f}-{n}".replace(" ", "_") for f, n in CASES])
def test_cli_case(family, name, workspace, no_server, monkeypatch):
    monkeypatch.delenv("IRTOOL_HARDENING_UNSET", raising=False)
    check_cli_failure(FAMILIES[family][name], workspace)


def test_serve_port_in_use(workspace, no_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        case = CliCase(_("serve", "{d}/tiny.onnx", "--port", str(port)), 1, (f"cannot listen on 127.0.0.1:{port}",))
        check_cli_failure(case, workspace)


@pytest.mark.skipif(is_root(), reason="root reads and writes through file permissions")
def test_unreadable_model_and_read_only_output(workspace):
    locked = workspace / "locked.py"
    locked.write_text(TINY)
    read_only = workspace / "read_only"
    read_only.mkdir()
    locked.chmod(0)
    read_only.chmod(0o555)
    try:
        check_cli_failure(CliCase(_("export", "{d}/locked.py"), 1, ("locked.py", "Permission")), workspace)
        out = ["-o", "{d}/read_only/m.onnx"]
        check_cli_failure(CliCase(_("export", "{d}/tiny.py", *out), 1, ("read_only", "Permission")), workspace)
    finally:
        locked.chmod(0o644)
        read_only.chmod(0o755)
        locked.unlink()
        read_only.rmdir()


def test_the_process_goes_on_after_every_failure(workspace, capsys):
    """After the whole matrix ran in this process, a good command still works."""
    code, out, err = run_cli(["export", str(workspace / "tiny.py"), "-o", str(workspace / "ok" / "m.onnx")])
    try:
        assert code == 0, err
        assert (workspace / "ok" / "m.onnx").stat().st_size > 0
    finally:
        for path in sorted((workspace / "ok").rglob("*"), reverse=True):
            path.unlink()
        (workspace / "ok").rmdir()


@pytest.mark.parametrize(
    "argv, code, fragment",
    [
        (["export", "{d}/raises.py"], 1, "raised ZeroDivisionError"),
        (["run", "{d}/cut.onnx", "--random"], 1, "is not a readable ONNX model"),
        (["serve", "{d}/tiny.onnx", "--port", "99999"], 2, "--port: expected 0-65535"),
    ],
    ids=["export", "run", "serve"],
)
def test_a_real_process_prints_one_line_and_no_traceback(argv, code, fragment, workspace):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "irtool", *(a.replace("{d}", str(workspace)) for a in argv)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.startswith("irtool:")]
    assert result.returncode == code
    assert "Traceback" not in result.stderr + result.stdout
    assert len(errors) == 1 and fragment in errors[0], result.stderr
