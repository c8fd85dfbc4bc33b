"""Timing helpers shared by every case (no module imports: also used inside the other venvs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (same as numpy's default)."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    """n, median (= p50), p90, p99, mean, min, max of samples in milliseconds, rounded to the microsecond."""
    values = sorted(samples_ms)
    out = {"n": len(values)}
    if not values:
        return out
    for key, q in (("median", 50), ("p50", 50), ("p90", 90), ("p99", 99)):
        out[key] = round(percentile(values, q), 3)
    out["mean"] = round(sum(values) / len(values), 3)
    out["min"] = round(values[0], 3)
    out["max"] = round(values[-1], 3)
    return out


def time_calls(fn: Callable[[], Any], n: int, warmup: int = 5) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``n`` times; the per-call wall times in ms."""
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        started = clock()
        fn()
        samples.append((clock() - started) * 1000.0)
    return samples


def run_for(workers: Sequence[Callable[[], Any]], seconds: float) -> tuple[int, float]:
    """Every worker in its own thread, calling back to back for ``seconds`` from a common start: (calls, elapsed)."""
    counts = [0] * len(workers)
    barrier = threading.Barrier(len(workers) + 1)
    stop_at = [0.0]

    def loop(i: int) -> None:
        barrier.wait()
        while time.perf_counter() < stop_at[0]:
            workers[i]()
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - started
