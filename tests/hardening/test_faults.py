"""Faults: irtool's writers killed with SIGKILL at chosen moments leave the previous file (or
none) intact, never a truncated one; atomic writes give files the mode a plain write would
(the umask), not a temp file's 0600; a full disk is a clear error with nothing half-written.

The kill tests run ``_fault_child`` (one writer, writing its target over and over with weights
B) and kill it after a fixed delay; the target, written before with weights A, must then load
and compute what A or B computes."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import irtool
from irtool.cli import main
from irtool.serving import triton

from ._fault_child import build

ROOT = Path(__file__).resolve().parents[2]
X = np.random.default_rng(0).normal(size=(2, 256)).astype("float32")
TARGETS = {
    "save": "model.keras",
    "save_weights": "model.weights.h5",
    "export_onnx": "model.onnx",
    "cli_export": "model.onnx",
    "checkpoint": "model.keras",
    "triton": "repo",
}


def child(kind: str, target: Path, mode: str, seed: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.hardening._fault_child", kind, str(target), mode, str(seed)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def onnx_outputs(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


def outputs_of(kind: str, path: Path) -> np.ndarray:
    """What the written file computes on X, read back the way a user would."""
    if kind in ("save", "checkpoint"):
        return irtool.models.load_model(str(path)).predict(X, verbose=0)
    if kind == "save_weights":
        model = build(0)
        model.load_weights(str(path))
        return model.predict(X, verbose=0)
    return onnx_outputs(path)


def write_previous(kind: str, target: Path) -> None:
    model = build(1)
    if kind == "triton":
        triton.write_model(model.to_onnx(), target, "faulty", version=1, max_batch_size=8)
    elif kind in ("save", "checkpoint"):
        model.save(str(target))
    elif kind == "save_weights":
        model.save_weights(str(target))
    else:
        irtool.onnx.export_onnx(model, str(target))


@pytest.fixture(scope="module")
def expected():
    """What weights A (seed 1) and B (seed 2) compute on X."""
    return {seed: build(seed).predict(X, verbose=0) for seed in (1, 2)}


def matches(actual: np.ndarray, expected: dict) -> int | None:
    for seed, want in expected.items():
        if np.allclose(actual, want, rtol=1e-4, atol=1e-4):
            return seed
    return None


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("delay, previous", [(0.0, False), (0.15, True), (0.5, True)], ids=["none", "early", "late"])
def test_kill_9_while_writing_leaves_the_previous_file_or_none(tmp_path, expected, kind, delay, previous):
    target = tmp_path / TARGETS[kind]
    if previous:
        write_previous(kind, target)
    process = child(kind, target, "loop", 2)
    try:
        assert process.stdout.readline().strip() == "ready", process.stdout.read()
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    if kind == "triton":
        check_repository(target, expected, previous)
    else:
        visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]
        assert visible in ([], [target.name]), visible
        if target.exists():
            seed = matches(outputs_of(kind, target), expected)
            assert seed is not None, f"{target.name} computes neither A's nor B's outputs"
        else:
            assert not previous, "the previous file is gone"
    # The killed writer could not remove its temporary file or folder; the next write does.
    if kind == "triton":
        versions = [int(p.name) for p in (target / "faulty").glob("[0-9]*")] if (target / "faulty").exists() else []
        triton.write_model(build(1).to_onnx(), target, "faulty", version=max(versions, default=0) + 1, max_batch_size=8)
    else:
        write_previous(kind, target)
    leftovers = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob(".irtool-*")]
    assert leftovers == [], leftovers


def check_repository(repo: Path, expected: dict, previous: bool) -> None:
    """Every version folder present is whole (its model loads and computes A or B) and the config parses."""
    model_dir = repo / "faulty"
    if not model_dir.exists():
        assert not previous
        return
    versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())
    if previous:
        assert versions[0] == 1
    for version in versions:
        seed = matches(onnx_outputs(model_dir / str(version) / "model.onnx"), expected)
        assert seed == (1 if version == 1 else 2), f"version {version} computes {seed}"
    config = triton.read_config(model_dir / "config.pbtxt")
    assert config.name == "faulty" and config.max_batch_size == 8


# -- file modes ------------------------------------------------------------------------------------


def _tiny():
    inputs = irtool.Input((3,), name="x")
    return irtool.Model(inputs, irtool.layers.Dense(2, name="d")(inputs), name="tiny")


def _write_with_each_writer(folder: Path) -> list[Path]:
    """Every atomic writer of irtool, each writing one file (or folder) into ``folder``."""
    model = _tiny()
    model.save(str(folder / "m.keras"))
    model.save_weights(str(folder / "m.weights.h5"))
    irtool.onnx.export_onnx(model, str(folder / "m.onnx"))
    callback = irtool.callbacks.ModelCheckpoint(str(folder / "ckpt.keras"))
    callback.set_model(model)
    callback.on_epoch_end(0, {})
    callback = irtool.callbacks.ModelCheckpoint(str(folder / "ckpt.weights.h5"), save_weights_only=True)
    callback.set_model(model)
    callback.on_epoch_end(0, {})
    written = triton.write_model(model.to_onnx(), folder / "repo", "tiny", max_batch_size=4)
    source = folder / "model.py"
    source.write_text(
        "import irtool\ninputs = irtool.Input((3,), name='x')\n"
        "model = irtool.Model(inputs, irtool.layers.Dense(2, name='d')(inputs))\n"
    )
    np.save(folder / "x.npy", np.ones((1, 3), "float32"))
    assert main(["export", str(source), "-o", str(folder / "cli.onnx")]) == 0
    assert main(["run", str(source), "--input", str(folder / "x.npy"), "--output-dir", str(folder / "outputs")]) == 0
    return [
        folder / "m.keras",
        folder / "m.weights.h5",
        folder / "m.onnx",
        folder / "ckpt.keras",
        folder / "ckpt.weights.h5",
        written.model,
        written.config,
        folder / "cli.onnx",
        *sorted((folder / "outputs").glob("*.npy")),
    ]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_keep_the_umask_mode(tmp_path, umask):
    previous = os.umask(umask)
    try:
        files = _write_with_each_writer(tmp_path)
    finally:
        os.umask(previous)
    modes = {path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode) for path in files}
    assert len(modes) >= 9
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


# -- a full disk -------------------------------------------------------------------------------------

FULL_DISK_SCRIPT = """
set -e
mount -t tmpfs -o size=1600k tmpfs "$DISK"
"$PYTHON" -m tests.hardening._fault_child "$KIND" "$DISK/$TARGET" once 1 > "$OUT/first.txt" 2>&1
"$PYTHON" -m tests.hardening._fault_child "$KIND" "$DISK/$TARGET" once 2 > "$OUT/second.txt" 2>&1 || echo $? > "$OUT/code.txt"
ls -A "$DISK" > "$OUT/listing.txt"
mkdir "$OUT/kept" && cp -r "$DISK/$TARGET" "$OUT/kept/"
"""


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.parametrize("kind", list(TARGETS))
def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_file(tmp_path, expected, kind):
    """On a 1.6 MB tmpfs (its own mount namespace) the first 1.1 MB write fits and the second
    does not: the second fails with ENOSPC named as such, leaves the first file whole and no
    temporary file behind."""
    if not _can_mount_tmpfs():
        pytest.skip("needs `unshare -r -m` and tmpfs mounts (user namespaces) to fill a real disk")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHON": sys.executable,
        "DISK": str(disk),
        "OUT": str(out),
        "KIND": kind,
        "TARGET": TARGETS[kind],
    }
    done = subprocess.run(["unshare", "-r", "-m", "sh", "-c", FULL_DISK_SCRIPT], cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, [p.read_text() for p in out.glob("*.txt")]
    assert (out / "first.txt").read_text().strip().endswith("ok") or kind == "cli_export", (
        out / "first.txt"
    ).read_text()
    second = (out / "second.txt").read_text()
    assert (out / "code.txt").read_text().strip() == "3", second
    assert "No space left on device" in second and f"{disk / TARGETS[kind]}" in second, second
    assert len(second.strip().splitlines()) == 1 + (kind == "cli_export"), second  # the CLI's line, then SystemExit
    assert "Traceback" not in second
    assert (out / "listing.txt").read_text().split() == [TARGETS[kind]]
    kept = out / "kept" / TARGETS[kind]
    if kind == "triton":
        assert sorted(p.name for p in (kept / "faulty").iterdir()) == ["2", "config.pbtxt"]
        assert matches(onnx_outputs(kept / "faulty" / "2" / "model.onnx"), expected) == 1
    else:
        assert matches(outputs_of(kind, kept), expected) == 1
    print(f"{kind}: {second.strip().splitlines()[-1]}")


# -- leftovers of killed writers ---------------------------------------------------------------------


def test_the_next_write_removes_only_dead_writers_leftovers(tmp_path):
    """A temporary name carries its writer's pid: leftovers of processes that are gone are removed
    by the next write into the folder; a live writer's file and other hidden files are kept."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    stale_file = tmp_path / f".irtool-{dead.pid}-0123456789ab.model.keras"
    stale_file.write_bytes(b"half a model")
    stale_folder = tmp_path / f".irtool-{dead.pid}-ba9876543210.mlp"
    (stale_folder / "1").mkdir(parents=True)
    live = tmp_path / f".irtool-{os.getpid()}-aaaaaaaaaaaa.other.onnx"
    live.write_bytes(b"being written")
    unrelated = tmp_path / ".irtool-notes.txt"
    unrelated.write_text("mine")
    model = build(1)
    model.save(str(tmp_path / "model.keras"))
    assert not stale_file.exists() and not stale_folder.exists()
    assert live.exists() and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name, "model.keras"])
