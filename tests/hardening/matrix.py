"""The hardening matrix's vocabulary: a case is an entry point, a bad input and the outcome expected.

Each family module (``test_cli_matrix``, ``test_api_matrix``, ``test_files_matrix``) is a table of
cases run by one parametrized test, so a new case is one row. What every case checks, whatever the
entry point:

- the error names what was expected and what was received: ``fragments`` must all appear in it;
- a CLI failure is one ``irtool: error:`` line with exit 2 (usage) or 1 (the rest), no traceback
  and never irtool's ``unexpected ...`` fallback (which means an error type nobody handled);
- a Python failure is the exception type given (``irtool's own`` types: see ``OWN_ERRORS``);
- nothing is written, and the process goes on (the next case runs in it).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from irtool.cli import main
from irtool.loading import LoadError

#: What a user-facing failure may raise from Python: ValueError and TypeError (Keras' choices, with
#: irtool's ArchiveError, WeightsFormatError, InputError, ConfigLimitError, OnnxImportError, ExportError
#: as subclasses), OSError for files that cannot be read at all, and LoadError for model sources.
#: Never KeyError, IndexError, RecursionError, zipfile.BadZipFile, google.protobuf's DecodeError or
#: h5py's internals: those mean a path no check covers.
LEAKED_ERRORS = (KeyError, IndexError, RecursionError, AttributeError, AssertionError, MemoryError)
#: irtool's own errors, as a ``try``/``except`` in a fuzz test catches them; anything else escapes and fails it.
OWN_ERRORS = (ValueError, TypeError, OSError, LoadError)


def check_own_error(error: BaseException) -> None:
    """``error`` is one of irtool's own: not a leaked type, and a message a user can read."""
    assert not isinstance(error, LEAKED_ERRORS), repr(error)
    assert type(error).__module__.split(".")[0] in ("builtins", "irtool"), f"a foreign error type: {error!r}"
    assert str(error).strip(), f"an error with no message: {error!r}"


@dataclass(frozen=True)
class CliCase:
    """``irtool <argv>`` in a workspace ``folder``: exits ``code`` with an error holding ``fragments``."""

    argv: Callable[[Path], list[str]]
    code: int
    fragments: tuple[str, ...]
    #: what the failure deliberately leaves behind (``plot`` keeps the DOT text when no renderer exists)
    leaves: tuple[str, ...] = ()


def files_under(folder: Path) -> list[str]:
    """Every path under ``folder`` (files and folders), so a half-made output folder shows too."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``irtool argv`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def check_cli_failure(case: CliCase, folder: Path) -> str:
    """Run ``case`` in ``folder`` and check the outcome; returns the error line."""
    before = files_under(folder)
    code, out, err = run_cli(case.argv(folder))
    lines = [line for line in err.splitlines() if not line.startswith("irtool: warning:")]
    assert code == case.code, f"exit {code}, expected {case.code}: {err!r}"
    assert len(lines) == 1 and lines[0].startswith("irtool: error: "), err
    assert "Traceback" not in out + err
    assert "unexpected" not in lines[0], f"an error type nobody handled: {lines[0]}"
    for fragment in (f.replace("{d}", str(folder)) for f in case.fragments):
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    after = files_under(folder)
    try:
        assert after == sorted([*before, *case.leaves]), "a failed command wrote something"
    finally:
        for left in sorted(set(after) - set(before), reverse=True):
            (folder / left).unlink() if (folder / left).is_file() else (folder / left).rmdir()
    return lines[0]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
