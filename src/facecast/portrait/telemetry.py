"""Live telemetry: per-loop and per-stage latency percentiles, delivered frames/s, queue depths.

Every live session owns a SessionStats; the module-level registry keeps the running ones and
a window of recent loops of all sessions, which `live_stats()` reports (for the server's
/stats). With FACECAST_PROFILE=1 each session logs a summary every PROFILE_EVERY frames.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from typing import Sized

import numpy as np

from facecast.config import env

STAGES = ("decode", "landmarks", "warp", "encode")
WINDOW = 1024  # frames kept per latency window (34 s at 30 frames/s)
RATE_WINDOW_S = 5.0  # s: delivered frames/s is measured over this window
IDLE_S = 1.0  # s without an event after which a stream counts as stopped
PROFILE_EVERY = 30  # frames between profile log lines

log = logging.getLogger("facecast.live")


def profiling() -> bool:
    """True when FACECAST_PROFILE is set to 1 (checked at each call, so tests can toggle it)."""
    return env("PROFILE", "0") == "1"


def _profile_log(line: str) -> None:
    """Log a profile line at INFO; when logging is not configured (uvicorn configures only its own
    loggers), "facecast.live" gets a stderr handler first, so the line is seen."""
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    log.info(line)


class LatencyWindow:
    """The last `size` durations in milliseconds, and their percentiles. Thread-safe."""

    def __init__(self, size: int = WINDOW):
        self._values: collections.deque = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._values.append(float(ms))

    def summary(self) -> dict:
        """{"count", "p50", "p95", "p99", "mean", "max"} in ms (None values when empty)."""
        with self._lock:
            values = np.array(self._values)
        if values.size == 0:
            return {"count": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"count": int(values.size), "p50": round(float(p50), 2), "p95": round(float(p95), 2),
                "p99": round(float(p99), 2), "mean": round(float(values.mean()), 2),
                "max": round(float(values.max()), 2)}


class RateMeter:
    """Events per second over the last `window_s` seconds. Thread-safe."""

    def __init__(self, window_s: float = RATE_WINDOW_S):
        self.window_s = window_s
        self._times: collections.deque = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Events/s between the first and last event of the window while events keep coming;
        once they stop for more than IDLE_S, the count over the whole window (decaying to 0)."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            if now - self._times[-1] > IDLE_S:
                return round(n / self.window_s, 2)
            return round((n - 1) / max(self._times[-1] - self._times[0], 1e-6), 2)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class SessionStats:
    """Telemetry of one live session. Counters are plain ints updated from one thread each.

    input_queue: the session's input queue; its depth is read at each report (None: 0), so it
    is never a stale copy from the last put or get.
    output_queue: set by the transport that sends the frames (its queue, with a `dropped`
    count); read at each report the same way.
    """

    _ids = itertools.count(1)

    def __init__(self, avatar: str = "", input_queue: Sized | None = None):
        self.id = next(self._ids)
        self.input_queue = input_queue
        self.avatar = avatar
        self.started = time.time()
        self.loop = LatencyWindow()
        self.stages = {name: LatencyWindow() for name in STAGES}
        self.delivered = RateMeter()
        self.received = self.sent = self.no_face = self.bad_frames = self.bad_messages = 0
        self.dropped_in = 0
        self.output_queue: Sized | None = None

    @property
    def in_depth(self) -> int:
        """Frames waiting in the input queue now."""
        return 0 if self.input_queue is None else len(self.input_queue)

    @property
    def out_depth(self) -> int:
        """Frames and messages waiting in the output queue now."""
        return 0 if self.output_queue is None else len(self.output_queue)

    @property
    def dropped_out(self) -> int:
        """Items the output queue dropped so far (a client reading too slowly)."""
        return int(getattr(self.output_queue, "dropped", 0))

    def record_stages(self, times_ms: dict) -> None:
        """Stage durations of one processed frame (keys of STAGES)."""
        for name, ms in times_ms.items():
            if name in self.stages:
                self.stages[name].add(ms)
                REGISTRY.stages[name].add(ms)

    def record_sent(self, loop_ms: float) -> None:
        """A frame went out, `loop_ms` after its input arrived."""
        self.loop.add(loop_ms)
        REGISTRY.loop.add(loop_ms)
        self.delivered.tick()
        self.sent += 1
        if profiling() and self.sent % PROFILE_EVERY == 0:
            _profile_log(self.profile_line())

    def snapshot(self) -> dict:
        return {
            "id": self.id, "avatar": self.avatar, "uptime_s": round(time.time() - self.started, 1),
            "loop_ms": self.loop.summary(), "stages_ms": {k: w.summary() for k, w in self.stages.items()},
            "delivered_fps": self.delivered.rate(), "received": self.received, "sent": self.sent,
            "dropped_in": self.dropped_in, "dropped_out": self.dropped_out, "no_face": self.no_face,
            "bad_frames": self.bad_frames, "bad_messages": self.bad_messages,
            "in_queue": self.in_depth, "out_queue": self.out_depth,
        }

    def profile_line(self) -> str:
        loop = self.loop.summary()
        stages = " ".join(f"{k}={w.summary()['p50']}" for k, w in self.stages.items())
        return (f"live session {self.id}: {self.sent} frames, {self.delivered.rate():.1f} fps, loop p50/p95/p99 "
                f"{loop['p50']}/{loop['p95']}/{loop['p99']} ms, stage p50 ms {stages}, queues in/out "
                f"{self.in_depth}/{self.out_depth}, dropped in/out {self.dropped_in}/{self.dropped_out}")


class _Registry:
    """Running sessions plus a window of recent loops of every session."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[int, SessionStats] = {}
        self.loop = LatencyWindow()
        self.stages = {name: LatencyWindow() for name in STAGES}
        self.finished = 0

    def add(self, stats: SessionStats) -> None:
        with self._lock:
            self._sessions[stats.id] = stats

    def remove(self, stats: SessionStats) -> None:
        with self._lock:
            if self._sessions.pop(stats.id, None) is not None:
                self.finished += 1

    def sessions(self) -> list[SessionStats]:
        with self._lock:
            return list(self._sessions.values())


REGISTRY = _Registry()


def live_stats() -> dict:
    """What /stats shows about live portrait sessions: recent loop and stage latency of all
    sessions (ms percentiles), and each running session's telemetry."""
    sessions = REGISTRY.sessions()
    return {
        "active_sessions": len(sessions), "finished_sessions": REGISTRY.finished,
        "loop_ms": REGISTRY.loop.summary(),
        "stages_ms": {k: w.summary() for k, w in REGISTRY.stages.items()},
        "delivered_fps": round(sum(s.delivered.rate() for s in sessions), 2),
        "sessions": [s.snapshot() for s in sessions],
    }
