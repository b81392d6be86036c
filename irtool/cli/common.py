"""What every ``irtool`` command shares: the one-line error, the usage-error parser, option types, the weights note."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from irtool import loading
from irtool.loading import describe
from irtool.runtime import ProviderError
from irtool.runtime.providers import provider_name


class CLIError(Exception):
    """A failure reported as one ``irtool: error:`` line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors raise ``CLIError(code=2)`` instead of printing usage."""

    def error(self, message: str):  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')", code=2)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):  # NaN fails the comparison
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


WEIGHTS_HELP = (
    "a .weights.h5 file or a .keras archive whose weights are loaded into the model "
    "(a model.py's own weights are freshly initialised)"
)


def note_fresh_weights(loaded: loading.LoadedModel) -> None:
    """Say once, after a command succeeded, that a model.py model ran or was exported with the
    weights its initializers drew (a failure prints its one error line and nothing else)."""
    if loaded.fresh_weights:
        print(
            f"irtool: note: model '{loaded.model.name}' has freshly initialised weights ({loaded.path.name} "
            "holds no trained ones); pass --weights FILE to use a .weights.h5 or .keras file",
            file=sys.stderr,
        )


def _provider_list(text: str) -> list[str]:
    try:
        names = [provider_name(name) for name in text.split(",") if name.strip()]
    except ProviderError as error:
        raise CLIError(f"--providers: {error}", code=2) from None
    if not names:
        raise CLIError(f"--providers: expected a list such as cuda,cpu, received {text!r}", code=2)
    return names


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created = []
    current = folder.absolute()
    while not current.exists():
        created.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"cannot create the folder {folder}: {describe(error)}") from error
    return created
