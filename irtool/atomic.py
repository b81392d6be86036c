"""Crash-safe writes: a file appears whole under its final name, or not at all.

Every file irtool writes (``.keras``, ``.weights.h5``, ``.onnx``, checkpoints, pictures, Triton
repositories, CLI outputs) is written under a hidden temporary name in the target's folder and
renamed over the target (``os.replace``, atomic within a file system), so a crash, a full disk or
``kill -9`` mid-write leaves the previous file (or none), never a truncated one.

- ``replacing(target)``: a temporary path beside ``target``, renamed over it when the block ends
  without an error and removed when it raises. An ``OSError`` that names no file (a full disk, as
  zipfile and h5py raise it) or the temporary one is raised again naming ``target``.
- ``staging(folder, name)``: a hidden folder inside ``folder`` to build several files in before
  moving them into place (``move_into``); removed with whatever is left in it when the block ends.

The result gets the mode a plain ``open``/``mkdir`` would give (``0o666``/``0o777`` less the
umask), not a temporary file's owner-only one. Temporary names carry the writer's process id
(``.irtool-<pid>-<random>.model.keras``): a writer killed with ``kill -9`` cannot clean up,
so the next write into the same folder removes the leftovers of processes that no longer exist.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

_LEFTOVER = re.compile(r"^\.irtool-(\d+)-[0-9a-f]{12}\.")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def plain_modes(path: Path) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the modes a plain write would."""
    umask = _umask()
    if not path.is_dir():
        os.chmod(path, 0o666 & ~umask)
        return
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary files and folders of writers in ``folder`` whose process is gone."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _LEFTOVER.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        _remove(folder / name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _temporary(folder: Path, name: str) -> Path:
    # the target's name last: writers that check the extension (".keras", ".weights.h5") accept it
    return folder / f".irtool-{os.getpid()}-{uuid.uuid4().hex[:12]}.{name}"


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``target`` (not created: the writer makes a file, or a folder,
    there), renamed over ``target`` when the block ends without an error, removed when it raises.

    >>> with replacing("model.onnx") as tmp:  # doctest: +SKIP
    ...     tmp.write_bytes(data)
    """
    target = Path(target)
    folder = target.parent
    remove_leftovers(folder)
    tmp = _temporary(folder, target.name)
    try:
        yield tmp
        plain_modes(tmp)
        os.replace(tmp, target)
    except BaseException as error:
        _remove(tmp)
        if isinstance(error, OSError) and error.errno and error.filename in (None, str(tmp)):
            raise OSError(error.errno, os.strerror(error.errno), str(target)) from error
        raise


def move_into(stage: Path, folder: Path, last: str) -> list[Path]:
    """Give the files staged in ``stage`` plain modes and rename each into ``folder``, the one
    named ``last`` after all others (an ONNX graph after its data file, so no reader finds a new
    graph beside old data); returns the new paths in that order."""
    plain_modes(stage)
    moved = []
    for path in sorted(stage.iterdir(), key=lambda p: p.name == last):
        os.replace(path, folder / path.name)
        moved.append(folder / path.name)
    return moved


@contextlib.contextmanager
def staging(folder: str | os.PathLike, name: str) -> Iterator[Path]:
    """A new hidden folder inside ``folder`` (named after ``name``) to write several files in and
    move them into place from; removed, with whatever is still in it, when the block ends."""
    folder = Path(folder)
    remove_leftovers(folder)
    path = _temporary(folder, name)
    path.mkdir()
    try:
        yield path
    finally:
        _remove(path)
