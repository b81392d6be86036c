"""tools/gpu_check.py runs end to end on the CPU provider in a reduced form (the GPU run is the same code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_on_the_cpu_provider():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["--providers", "cpu", "--models", "mlp,tickets", "--batches", "1,2", "--runs", "3", "--markdown"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_check.py"), *argv], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[:2] for row in table] == [
        ["| mlp", "1"],
        ["| mlp", "2"],
        ["| tickets", "1"],
        ["| tickets", "2"],
    ]
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "yes" and float(cells[2]) <= 1e-5  # parity with the NumPy executor
        assert float(cells[5]) > 0 and float(cells[7]) > 0  # run and IO-binding latencies
    assert lines[-1].startswith("providers: CPUExecutionProvider;")
