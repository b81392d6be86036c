"""A child process for the fault tests: ``python -m tests.hardening._fault_child KIND TARGET MODE SEED``.

KIND is one of irtool's writers (``WRITERS``); the model is a 1 MB MLP whose weights come from
SEED. MODE ``loop`` prints ``ready`` then writes TARGET over and over until it is killed (the
parent sends SIGKILL at a chosen moment); ``once`` writes it once and prints ``ok``, or the
error as ``error: <type>: <message>`` and exits 3 (the full-disk test).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import irtool
from irtool.cli import main as cli_main
from irtool.onnx import export_onnx
from irtool.serving import triton

MODEL_PY = """
import numpy as np
import irtool

inputs = irtool.Input((256,), name="x")
hidden = irtool.layers.Dense(1024, activation="relu", name="hidden")(inputs)
model = irtool.Model(inputs, irtool.layers.Dense(10, name="out")(hidden), name="faulty")
rng = np.random.default_rng({seed})
model.set_weights([rng.normal(scale=0.05, size=w.shape).astype("float32") for w in model.get_weights()])
"""


def build(seed: int):
    """The model of MODEL_PY, built here (so its weights are the ones the CLI's model.py gets)."""
    namespace: dict = {}
    exec(MODEL_PY.format(seed=seed), namespace)  # noqa: S102 - our own fixed source text
    return namespace["model"]


def _cli_export(model, target: Path, seed: int, _) -> None:
    source = Path(tempfile.mkdtemp()) / "model.py"
    source.write_text(MODEL_PY.format(seed=seed))
    code = cli_main(["export", str(source), "-o", str(target)])
    if code:
        raise SystemExit(code)


def _checkpoint(model, target: Path, seed: int, step: int) -> None:
    callback = irtool.callbacks.ModelCheckpoint(str(target))
    callback.set_model(model)
    callback.on_epoch_end(step, {})


def _triton(model, target: Path, seed: int, step: int) -> None:
    triton.write_model(model.to_onnx(), target, "faulty", version=seed + step + 1, max_batch_size=8)


WRITERS = {
    "save": lambda model, target, seed, step: model.save(str(target)),
    "save_weights": lambda model, target, seed, step: model.save_weights(str(target)),
    "export_onnx": lambda model, target, seed, step: export_onnx(model, str(target)),
    "cli_export": _cli_export,
    "checkpoint": _checkpoint,
    "triton": _triton,
}


def run(kind: str, target: str, mode: str, seed: int) -> int:
    model = build(seed)
    write = WRITERS[kind]
    if mode == "once":
        try:
            write(model, Path(target), seed, 0)
        except (Exception, SystemExit) as error:  # noqa: BLE001 - the parent reads what was raised
            print(f"error: {type(error).__name__}: {error}", flush=True)
            return 3
        print("ok", flush=True)
        return 0
    print("ready", flush=True)
    step = 0
    while True:
        write(model, Path(target), seed, step)
        step += 1


if __name__ == "__main__":
    kind, target, mode, seed = sys.argv[1:]
    np.seterr(all="ignore")
    sys.exit(run(kind, target, mode, int(seed)))
