"""Per-stage latency counters for DoCommand {"command": "stats"}."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StageStats:
    """Count, mean, last and max milliseconds per named stage; thread-safe and O(1) memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, list[float]] = {}  # name -> [count, total_ms, last_ms, max_ms]
        self.errors = 0

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - started) * 1000)

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            entry = self._stages.setdefault(stage, [0, 0.0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += ms
            entry[2] = ms
            entry[3] = max(entry[3], ms)

    def count_error(self) -> None:
        with self._lock:
            self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            stages = {name: {"count": int(c), "mean_ms": round(t / c, 3) if c else 0.0, "last_ms": round(last, 3),
                             "max_ms": round(peak, 3)} for name, (c, t, last, peak) in self._stages.items()}
            return {"stages": stages, "errors": self.errors}
