"""Latency and throughput of repeated runs: what ``irtool run --benchmark`` prints.

``benchmark(run, runs, batch_size)`` calls ``run()`` ``warmup`` times untimed, then ``runs`` times,
each timed alone with ``time.perf_counter_ns``, and reports percentiles of those latencies and
the throughput ``batch_size / mean latency``. The timed function is the caller's, so the CLI times
exactly what a hand-written ONNX Runtime loop would (``tools/bench_session.py`` compares them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Latencies in milliseconds over ``runs`` timed runs of ``batch_size`` samples each."""

    runs: int
    batch_size: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput: float  # samples per second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def benchmark(run: Callable[[], Any], runs: int, batch_size: int, warmup: int = 3) -> Timing:
    """Time ``runs`` calls of ``run`` (after ``warmup`` untimed ones); see the module docstring."""
    if runs < 1:
        raise ValueError(f"runs: expected a positive number of runs, received {runs}")
    for _ in range(warmup):
        run()
    clock = time.perf_counter_ns
    times = np.empty(runs, dtype=np.int64)
    for k in range(runs):
        start = clock()
        run()
        times[k] = clock() - start
    ms = times / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    return Timing(
        runs=runs,
        batch_size=batch_size,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=mean,
        min_ms=float(ms.min()),
        throughput=batch_size / (mean / 1e3) if mean > 0 else float("inf"),
    )


__all__ = ["Timing", "benchmark"]
