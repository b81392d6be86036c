"""The README's CLI reference and example notes match the code.

Every subcommand and option of ``irtool`` (as ``irtool [COMMAND] --help`` lists them) appears in the
README's "The CLI" block, and every option written there exists in that command's parser. Each
file in ``examples/`` says in its docstring which extra it needs, and the README agrees.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

from irtool.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _cli_block() -> str:
    section = README.split("\n## The CLI\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def _documented() -> dict:
    """``{command or "": set of flags}`` from the README's CLI block (continuation lines are
    indented; an ``irtool COMMAND ...`` line holds for every command)."""
    parser = build_parser()
    commands = set(_subparsers(parser))
    out: dict = {}
    current = None
    for line in _cli_block().splitlines():
        if line.startswith("irtool"):
            words = line.split()
            word = words[1] if len(words) > 1 else ""
            current = word if word in commands or word == "COMMAND" else ""
        elif not line.strip() or current is None:
            continue
        out.setdefault(current, set()).update(FLAG.findall(line))
    every = out.pop("COMMAND", set())
    for command in commands:
        out.setdefault(command, set()).update(every)
    return out


def _subparsers(parser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser) -> list:
    """Each option of ``parser`` as its tuple of flags (``("-o", "--output")``)."""
    return [tuple(a.option_strings) for a in parser._actions if a.option_strings]


def _help(argv) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return buffer.getvalue()


def _parsers():
    parser = build_parser()
    return [("", parser), *_subparsers(parser).items()]


def test_readme_lists_every_subcommand():
    documented = _documented()
    commands = sorted(_subparsers(build_parser()))
    assert commands, "the parser has no subcommands?"
    missing = [c for c in commands if c not in documented]
    assert not missing, f"README's CLI block has no `irtool {missing[0]} ...` line (commands: {commands})"
    for command in commands:
        assert command in _help([]), f"`irtool --help` does not list {command}"


@pytest.mark.parametrize(("command", "parser"), _parsers(), ids=lambda x: x if isinstance(x, str) else "")
def test_readme_options_match_the_parser(command, parser):
    documented = _documented().get(command, set())
    help_text = _help([command] if command else [])
    missing = []
    for flags in _options(parser):
        assert any(f in help_text for f in flags), f"`irtool {command} --help` does not show {flags}"
        if not any(f in documented for f in flags):
            missing.append("/".join(flags))
    assert not missing, f"README's CLI block does not document `irtool {command}` option(s) {missing}"
    known = {f for flags in _options(parser) for f in flags}
    unknown = sorted(documented - known)
    assert not unknown, f"README's CLI block lists `irtool {command}` option(s) {unknown} that the parser lacks"


EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_says_which_extra_it_needs(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    lines = [line.strip() for line in doc.splitlines() if line.strip().startswith("Extras:")]
    assert len(lines) == 1, f"{path.name}: its docstring needs one line 'Extras: none' or 'Extras: <what> ...'"
    assert f"examples/{path.name}" in README, f"README does not mention examples/{path.name}"
    if lines[0] != "Extras: none.":
        # An example with an extra: the README names it next to the example.
        needs = lines[0].removeprefix("Extras:").split("(")[0].strip().rstrip(".")
        mention = README[README.index(f"examples/{path.name}") :][:400]
        assert needs in mention, f"README should say that examples/{path.name} needs {needs}"
