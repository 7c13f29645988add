"""Timing helpers shared by the benchmark scripts: medians after a warm-up, never a single run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls of ``work``, after one warm-up call (jit compilation, caches)."""
    work()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
