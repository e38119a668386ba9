"""Process-wide telemetry: per-stage latency samples (ms), counters and frame throughput.

Thread-safe: producers record from worker threads, the server reads snapshots for GET /stats.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np

WINDOW = 2048  # latency samples kept per stage
RATE_WINDOW_S = 5.0  # s: frames/s is averaged over this much recent time


class Telemetry:
    """Latency percentiles per stage, event counters, frames/s over the last RATE_WINDOW_S."""

    def __init__(self, window: int = WINDOW):
        self._lock = threading.Lock()
        self._window = window
        self._stages: dict[str, deque] = {}
        self._counters: Counter = Counter()
        self._frames: deque[tuple[float, int]] = deque()

    def observe(self, stage: str, ms: float) -> None:
        """Record one latency sample of `stage`, in milliseconds."""
        with self._lock:
            self._stages.setdefault(stage, deque(maxlen=self._window)).append(float(ms))

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def frames(self, n: int) -> None:
        """`n` frames were produced now."""
        now = time.monotonic()
        with self._lock:
            self._frames.append((now, n))
            self._counters["frames"] += n
            while self._frames and self._frames[0][0] < now - RATE_WINDOW_S:
                self._frames.popleft()

    def samples(self, stage: str) -> list[float]:
        """The kept latency samples of `stage` (ms), oldest first."""
        with self._lock:
            return list(self._stages.get(stage, ()))

    def reset(self, stage: str | None = None) -> None:
        """Forget the samples of one stage (or of all), e.g. between benchmark phases."""
        with self._lock:
            if stage is None:
                self._stages.clear()
            else:
                self._stages.pop(stage, None)

    def snapshot(self) -> dict:
        """{"latency_ms": {stage: {count, p50, p95, p99, max}}, "counters": {...}, "frames_per_s": f}."""
        now = time.monotonic()
        with self._lock:
            stages = {name: list(values) for name, values in self._stages.items()}
            counters = dict(self._counters)
            recent = sum(n for t, n in self._frames if t >= now - RATE_WINDOW_S)
        return {"latency_ms": {name: percentiles(values) for name, values in sorted(stages.items())},
                "counters": counters, "frames_per_s": recent / RATE_WINDOW_S}


def percentiles(values: list[float]) -> dict:
    """count, p50, p95, p99 and max of latency samples in ms (zeros when there are none)."""
    if not values:
        return {"count": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {"count": len(values), "p50": round(float(p50), 2), "p95": round(float(p95), 2),
            "p99": round(float(p99), 2), "max": round(max(values), 2)}
