"""The package's shape, checked: one-way layers, no import cycles, no hidden imports, the graph's
internals kept inside ``irtool/ir``, and ARCHITECTURE.md drawing the layers the contracts declare."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import networkx as nx
import pytest
from importlinter.cli import lint_imports

import irtool.onnx

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "irtool"


def _layers() -> list:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return contract["layers"]


def test_import_contracts_hold():
    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter reads pyproject.toml from the working folder
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0
    finally:
        os.chdir(cwd)


def test_no_import_cycles():
    graph = grimp.build_graph("irtool")
    imports = nx.DiGraph([(m, t) for m in graph.modules for t in graph.find_modules_directly_imported_by(m)])
    cycles = [sorted(c) for c in nx.strongly_connected_components(imports) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_imports_inside_functions_say_why():
    """A function-level import hides a dependency from the contracts' readers: each needs a comment
    on the line before it giving its reason."""
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and not lines[
                        inner.lineno - 2
                    ].strip().startswith("#"):
                        unexplained.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert unexplained == []


def test_only_the_ir_reaches_into_networkx():
    """Outside ``irtool/ir`` the graph is read and edited through ``ir.Graph``'s methods."""
    users = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "ir":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.nx\b", line.split("#")[0]):
                users.append(f"{path.relative_to(ROOT)}:{number}")
    assert users == []


def test_architecture_md_draws_the_contract_layers():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = re.search(r"<!-- layers: generated from pyproject.toml -->\n```\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md needs the layers block (see this test)"
    drawn = [line.strip() for line in block.group(1).splitlines() if line.strip() and line.strip() != "↓"]
    assert drawn == _layers()
    for layer in _layers():
        for package in re.split(r"\s*[|:]\s*", layer):
            assert re.search(rf"`(irtool/)?{package}\b", text), f"ARCHITECTURE.md does not describe `{package}`"


def test_a_fresh_process_revives_raw_ops_from_a_config():
    """Raw operations register how they are revived when irtool is imported (not on first save)."""
    code = textwrap.dedent(
        """
        import json
        import irtool as keras
        from irtool import ops
        x = keras.Input((4,))
        config = keras.Model(x, ops.reshape(x, (-1, 2, 2)) * 2.0).to_json()
        """
    )
    made = subprocess.run([sys.executable, "-c", code + "print(config)"], capture_output=True, text=True, check=True)
    load = "import sys, irtool\nm = irtool.models.model_from_json(sys.stdin.read())\nprint(m.output.shape)"
    loaded = subprocess.run([sys.executable, "-c", load], input=made.stdout, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "(None, 2, 2)"


def test_onnx_ir_loads_only_when_a_cut_is_made():
    """onnx-ir (with sympy) is a third of ``import irtool``: importing irtool or its command line does
    not load it; ``irtool.onnx``'s cutting names do, on first use, and are the same objects as
    ``irtool.onnx.extraction``'s."""
    code = textwrap.dedent(
        """
        import sys
        import irtool, irtool.cli
        print("onnx_ir" in sys.modules)
        from irtool.onnx import Cut, extract, save_cut
        from irtool.onnx import extraction, onnx_cut
        print("onnx_ir" in sys.modules, extract is extraction.extract, save_cut is onnx_cut.save_cut, Cut is onnx_cut.Cut)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "True", "True", "True"]
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        irtool.onnx.no_such_name  # noqa: B018
    assert set(irtool.onnx.__all__) <= set(dir(irtool.onnx)) | set(irtool.onnx._CUTTING)
