"""Seeded one-line bugs in irtool, each run against the tests that execute its line: how much the suite catches.

    python tools/mutation.py --sample 100 --seed 17 --timeout 300     # 7 named + 100 random mutants
    python tools/mutation.py --named-only                             # the survivors issue 17 names
    python tools/mutation.py --list --sample 40                       # what would run, without running
    python tools/mutation.py --mutant irtool/runtime/feeds.py:101 'or' 'and' --tests tests/runtime
                                                                      # one mutant against chosen tests

The first run builds a coverage map (``--map``, ~20 min on 2 cores): the suite (``MAP_TESTS``,
``slow`` ones left out) runs once under coverage with one context per test, and each line of ``PACKAGES`` is mapped to the tests that execute it. A
mutant then runs exactly those tests (``pytest -x``); a line no test executes is a survivor
without running anything. Needs ``coverage`` and ``pytest-cov`` (in the ``dev`` extra).

Why not mutmut or cosmic-ray: both mutate every site of the chosen files and first run the whole
configured suite (mutmut to map tests to functions, cosmic-ray per mutant unless told otherwise);
on a shared 2-core machine that is hours. This script instead draws a bounded, seeded sample of
realistic mutations (comparison flips, off-by-one constants, swapped arithmetic, negated
conditions, dropped `not`, True/False) from the packages issue 17 names, plus the named bugs
the suite once missed, and runs only the tests that execute each mutant's line (``-x``), with a
per-mutant timeout. Each mutant runs in a private copy of the source tree,
so the working tree is never touched.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ops", "onnx", "runtime", "saving", "models")
#: The tests whose coverage decides which tests a mutant runs: the whole suite but its ``slow``
#: application variants (the CLI, serving and hardening tests are what reach runtime/'s file
#: readers and inspection, for one).
MAP_TESTS = ("tests",)


@dataclass
class Mutant:
    name: str
    path: str  # relative to ROOT
    line: int  # 1-based
    old: str  # the exact text replaced on that line
    new: str
    tests: list[str]


# The bugs issue 17 lists as surviving (and the two caught only by another family's tests),
# each with the tests of its own family.
NAMED = [
    (
        "maximum tie to the second operand",
        "irtool/ops/elementwise.py",
        '"maximum": lambda g, a, b, y: (g * (a >= b), g * (a < b)),',
        '"maximum": lambda g, a, b, y: (g * (a > b), g * (a <= b)),',
        ["tests/train/test_vjp_ties.py"],
    ),
    (
        "get_layer(index=len(layers)) an IndexError",
        "irtool/models/functional.py",
        "if len(layers) <= index:",
        "if len(layers) < index:",
        ["tests/models/test_get_layer_index.py"],
    ),
    (
        "a matmul that is also an output fused",
        "irtool/ops/fusion.py",
        "if len(readers) != 1 or graph.uses(product) != 1:",
        "if len(readers) != 1:",
        ["tests/ops/test_fusion_outputs.py"],
    ),
    (
        "-o newdir/ written as a file",
        "irtool/cli/export.py",
        'if out.is_dir() or output.endswith(("/", os.sep)):',
        "if out.is_dir():",
        ["tests/hardening/test_export_new_folder.py"],
    ),
    (
        "trainable=False lost in the config",
        "irtool/layers/layer.py",
        'config.update({"trainable": self.trainable, "dtype": dtype_policy_config(self.dtype)})',
        'config.update({"dtype": dtype_policy_config(self.dtype)})',
        ["tests/layers/test_trainable_config.py"],
    ),
    (
        "BatchNormalization momentum swapped",
        "irtool/ops/normalization.py",
        "m = np.asarray(momentum, dtype)",
        "m = np.asarray(1.0 - momentum, dtype)",
        ["tests/layers/test_normalization_momentum.py", "tests/layers/test_normalization.py"],
    ),
    (
        "ONNX LSTM gate order",
        "irtool/ops/rnn_lowering.py",
        "for k in (0, 3, 1, 2)]",
        "for k in (0, 1, 3, 2)]",
        ["tests/onnx/test_lstm_gate_order.py"],
    ),
]

_COMPARE_FLIPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
_BINOP_FLIPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult}


def _variants(node):
    """Mutated copies of ``node`` (one change each), realistic one-line bugs."""
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_FLIPS:
        yield ast.Compare(node.left, [_COMPARE_FLIPS[type(node.ops[0])]()], node.comparators)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_FLIPS:
        yield ast.BinOp(node.left, _BINOP_FLIPS[type(node.op)](), node.right)
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int and node.value in (0, 1, 2, -1):
        yield ast.Constant(node.value + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node.operand
    elif isinstance(node, ast.BoolOp):
        yield ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)


def _digest(rel: str) -> str:
    return hashlib.sha1((ROOT / rel).read_bytes()).hexdigest()


def build_map(path: Path, tests=MAP_TESTS) -> dict:
    """``{"lines": {file: {line: [test node ids]}}, "sources": {file: sha1}}`` for the files of
    PACKAGES, from one coverage run of MAP_TESTS (the digests say which files changed since)."""
    data_file = path.with_suffix(".coverage")
    sources = {
        str(p.relative_to(ROOT)): _digest(str(p.relative_to(ROOT)))
        for package in PACKAGES
        for p in sorted((ROOT / "irtool" / package).rglob("*.py"))
    }
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", "-m", "not slow",
        *(f"--cov=irtool/{package}" for package in PACKAGES), "--cov-context=test", "--cov-report=",
        *tests,
    ]  # fmt: skip
    print(f"building the coverage map (one run of {' '.join(tests)})", flush=True)
    subprocess.run(command, cwd=ROOT, env={**os.environ, "COVERAGE_FILE": str(data_file)}, check=False)
    import coverage  # the dev extra; only the map needs it

    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    mapping = {}
    for measured in data.measured_files():
        rel = os.path.relpath(measured, ROOT)
        lines = {}
        for line, contexts in data.contexts_by_lineno(measured).items():
            tests = sorted({c.rsplit("|", 1)[0] for c in contexts if c})
            if tests:
                lines[str(line)] = tests
        mapping[rel] = lines
    mapping = {"lines": mapping, "sources": sources}
    path.write_text(json.dumps(mapping))
    data_file.unlink(missing_ok=True)
    return mapping


def load_map(path: Path) -> dict:
    """The map at ``path`` (built when missing); a source file changed since it was built would
    send mutants to the wrong lines' tests, so that is an error."""
    mapping = json.loads(path.read_text()) if path.exists() else build_map(path)
    changed = [rel for rel, digest in mapping["sources"].items() if (ROOT / rel).exists() and _digest(rel) != digest]
    if changed:
        raise SystemExit(f"the coverage map {path} is older than {', '.join(changed)}: delete it to rebuild it")
    return mapping["lines"]


#: At most this many of the tests that execute a line run for its mutant (a line every model
#: executes has thousands): the mirrored file's, then an even spread of the rest. A mutant only
#: those miss counts as a survivor, so the rate measured is a lower bound.
MAX_TESTS = 400


def _signatures(tree: ast.AST) -> dict[int, range]:
    """Each line of a function's signature (its defaults) -> the lines of the function's body."""
    spans = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = range(node.body[0].lineno, node.end_lineno + 1)
            for line in range(node.lineno, node.body[0].lineno):
                spans[line] = body
    return spans


def _tests_for(mapping: dict, rel: str, line: int, body: range | None = None) -> list[str]:
    """The tests that execute ``line`` of ``rel``, mirrored test file first (tests/ops/test_conv.py
    for irtool/ops/conv.py: the likeliest to fail fast), at most MAX_TESTS. A signature line runs
    only at import, outside any test: its default values reach the tests that run the ``body``."""
    lines = mapping.get(rel, {})
    if body is not None:
        tests = sorted({t for n in body for t in lines.get(str(n), [])})
    else:
        tests = lines.get(str(line), [])
    mirror = f"/test_{Path(rel).stem}.py::"
    first = [t for t in tests if mirror in t][:MAX_TESTS]
    rest = [t for t in tests if mirror not in t]
    room = MAX_TESTS - len(first)
    if len(rest) > room:
        rest = [rest[i * len(rest) // room] for i in range(room)] if room > 0 else []
    return first + rest


def random_mutants(count: int, seed: int, mapping: dict) -> list[Mutant]:
    """``count`` mutants spread evenly over PACKAGES, drawn with ``seed`` from every single-line site."""
    rng = random.Random(seed)
    chosen, signatures = [], {}
    for i, package in enumerate(PACKAGES):
        sites = []
        for path in sorted((ROOT / "irtool" / package).rglob("*.py")):
            source = path.read_text()
            lines = source.splitlines()
            tree = ast.parse(source)
            signatures[path] = _signatures(tree)
            for node in ast.walk(tree):
                if getattr(node, "lineno", None) != getattr(node, "end_lineno", -1):
                    continue
                text = lines[node.lineno - 1]
                # ast offsets are UTF-8 byte offsets; get_source_segment would rescan the file per node
                old = text.encode()[node.col_offset : node.end_col_offset].decode(errors="replace")
                if text.lstrip().startswith(("#", '"', "'")):
                    continue
                for variant in _variants(node):
                    sites.append((path, node.lineno, old, ast.unparse(variant)))
        share = count // len(PACKAGES) + (i < count % len(PACKAGES))
        for path, line, old, new in rng.sample(sites, min(share, len(sites))):
            rel = str(path.relative_to(ROOT))
            tests = _tests_for(mapping, rel, line, signatures[path].get(line))
            chosen.append(Mutant(f"{rel}:{line} {old!r} -> {new!r}", rel, line, old, new, tests))
    return chosen


def named_mutants() -> list[Mutant]:
    mutants = []
    for name, rel, old, new, tests in NAMED:
        lines = (ROOT / rel).read_text().splitlines()
        hits = [i for i, text in enumerate(lines, 1) if old in text]
        if len(hits) != 1:
            raise SystemExit(f"named mutant {name!r}: expected the text once in {rel}, found it {len(hits)} times")
        mutants.append(Mutant(name, rel, hits[0], old, new, tests))
    return mutants


def run_mutant(mutant: Mutant, tree: Path, timeout: float) -> str:
    """'killed', 'survived', 'uncovered' (no test executes the line) or 'timeout' (undecided: not
    counted as caught, since on a busy machine a slow run and a hang look alike)."""
    if not mutant.tests:
        return "uncovered"
    target = tree / mutant.path
    original = target.read_text()
    lines = original.splitlines(keepends=True)
    lines[mutant.line - 1] = lines[mutant.line - 1].replace(mutant.old, mutant.new, 1)
    target.write_text("".join(lines))
    arguments = tree / "mutant-tests.txt"  # thousands of node ids: through pytest's @file, not argv
    arguments.write_text("\n".join(mutant.tests) + "\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:warnings",
        f"@{arguments}",
    ]
    try:
        done = subprocess.run(
            command, cwd=tree, env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout
        )
        return "survived" if done.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_text(original)


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree), "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=40, help="random mutants, spread over the packages")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--timeout", type=float, default=90, help="seconds per mutant")
    parser.add_argument("--named-only", action="store_true", help="only the named survivors of issue 17")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument(
        "--map",
        type=Path,
        default=Path(tempfile.gettempdir()) / "irtool-mutation-map.json",
        help="the coverage map (built when missing; delete it after changing the tests)",
    )
    parser.add_argument(
        "--mutant",
        nargs=3,
        action="append",
        metavar=("FILE:LINE", "OLD", "NEW"),
        help="run only this mutant (OLD replaced by NEW once on that line) against --tests; repeatable",
    )
    parser.add_argument("--tests", nargs="+", default=[], help="the tests --mutant runs (files, folders or ids)")
    args = parser.parse_args()
    if args.mutant:
        mutants = []
        for where, old, new in args.mutant:
            rel, line = where.rsplit(":", 1)
            if old not in (ROOT / rel).read_text().splitlines()[int(line) - 1]:
                raise SystemExit(f"--mutant: {old!r} is not on line {line} of {rel}")
            mutants.append(Mutant(f"{rel}:{line} {old!r} -> {new!r}", rel, int(line), old, new, args.tests))
    else:
        mutants = named_mutants()
    if not args.named_only and not args.mutant:
        mapping = load_map(args.map)
        mutants += random_mutants(args.sample, args.seed, mapping)
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name}   [{len(mutant.tests)} tests: {' '.join(mutant.tests[:3])} ...]")
        return 0
    counts = {"killed": 0, "survived": 0, "uncovered": 0, "timeout": 0}
    with tempfile.TemporaryDirectory(prefix="irtool-mutation-") as folder:
        tree = Path(folder)
        shutil.copytree(ROOT / "irtool", tree / "irtool", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        for folder_name in ("examples", "tools", "docs"):  # tests read the examples, tools and docs
            shutil.copytree(ROOT / folder_name, tree / folder_name, ignore=shutil.ignore_patterns("__pycache__"))
        for file_name in ("pyproject.toml", "README.md", "ARCHITECTURE.md"):
            shutil.copy(ROOT / file_name, tree / file_name)
        for i, mutant in enumerate(mutants, 1):
            started = time.monotonic()
            outcome = run_mutant(mutant, tree, args.timeout)
            counts[outcome] += 1
            print(
                f"[{i}/{len(mutants)}] {outcome:9s} {time.monotonic() - started:5.1f}s  {len(mutant.tests):4d} tests  "
                f"{mutant.name}",
                flush=True,
            )
    caught = counts["killed"]
    print(f"caught {caught} of {len(mutants)} ({100 * caught / len(mutants):.0f}%): {counts}")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
