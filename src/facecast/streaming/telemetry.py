"""Telemetry of sessions: latency windows (ms) and their percentiles, rates, counters, and the
per-session records of live-portrait sessions.

One convention: a summary of no samples has count 0 and None for every statistic (there is no
latency to report, and 0 ms would read as a measurement). No globals: the server makes Telemetry
objects and passes them to what records into them; everything here is thread-safe (worker threads
record, the event loop reads snapshots for GET /stats and /live/stats).
With FACECAST_PROFILE=1 each live-portrait session logs a summary every PROFILE_EVERY frames.
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

WINDOW = 2048  # latency samples kept per stage
RATE_WINDOW_S = 5.0  # s: frames/s is measured over this much recent time
IDLE_S = 1.0  # s without an event after which a stream counts as stopped
PORTRAIT_STAGES = ("decode", "landmarks", "warp", "encode")
PORTRAIT_WINDOW = 1024  # frames kept per live-portrait latency window (34 s at 30 frames/s)
PROFILE_EVERY = 30  # frames between profile log lines

live_log = logging.getLogger("facecast.live")


def percentiles(values) -> dict:
    """{"count", "p50", "p95", "p99", "mean", "max"} of latency samples in ms (None when empty)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"count": int(values.size), "p50": round(float(p50), 2), "p95": round(float(p95), 2),
            "p99": round(float(p99), 2), "mean": round(float(values.mean()), 2),
            "max": round(float(values.max()), 2)}


class LatencyWindow:
    """The last `size` durations in milliseconds, and their percentiles. Thread-safe."""

    def __init__(self, size: int = WINDOW):
        self._values: collections.deque = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ms: float) -> None:
        with self._lock:
            self._values.append(float(ms))

    def values(self) -> list[float]:
        """The kept samples (ms), oldest first."""
        with self._lock:
            return list(self._values)

    def summary(self) -> dict:
        """percentiles() of the kept samples."""
        return percentiles(self.values())


class RateMeter:
    """Events per second over the last `window_s` seconds. Thread-safe."""

    def __init__(self, window_s: float = RATE_WINDOW_S):
        self.window_s = window_s
        self._times: collections.deque = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None, n: int = 1) -> None:
        """`n` events at `now` (perf_counter s; default: now)."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._times.extend([now] * n)
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

    def count(self, now: float | None = None) -> int:
        """Events within the window."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._times)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class Telemetry:
    """Latency windows per stage, event counters, frames/s, and the records of running sessions."""

    def __init__(self, window: int = WINDOW):
        self._lock = threading.Lock()
        self._window = window
        self._stages: dict[str, LatencyWindow] = {}
        self._counters: collections.Counter = collections.Counter()
        self._frames = RateMeter(RATE_WINDOW_S)
        self._sessions: dict[int, object] = {}
        self.finished_sessions = 0

    def observe(self, stage: str, ms: float) -> None:
        """Record one latency sample of `stage`, in milliseconds."""
        with self._lock:
            window = self._stages.get(stage)
            if window is None:
                window = self._stages[stage] = LatencyWindow(self._window)
        window.add(ms)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def frames(self, n: int) -> None:
        """`n` frames were produced now."""
        self._frames.tick(time.perf_counter(), n)
        self.count("frames", n)

    def samples(self, stage: str) -> list[float]:
        """The kept latency samples of `stage` (ms), oldest first."""
        with self._lock:
            window = self._stages.get(stage)
        return [] if window is None else window.values()

    def summary(self, stage: str) -> dict:
        """percentiles() of one stage (count 0 and None values when it has no samples)."""
        return percentiles(self.samples(stage))

    def reset(self, stage: str | None = None) -> None:
        """Forget the samples of one stage (or of all), e.g. between benchmark phases."""
        with self._lock:
            if stage is None:
                self._stages.clear()
            else:
                self._stages.pop(stage, None)

    def snapshot(self) -> dict:
        """{"latency_ms": {stage: percentiles}, "counters": {...}, "frames_per_s": f}; only stages
        with samples are listed."""
        with self._lock:
            stages = dict(self._stages)
            counters = dict(self._counters)
        latency = {name: window.summary() for name, window in sorted(stages.items())}
        return {"latency_ms": {name: s for name, s in latency.items() if s["count"]},
                "counters": counters, "frames_per_s": self._frames.count() / RATE_WINDOW_S}

    # -- running sessions (their own records, e.g. SessionStats) ------------------------------
    def track(self, record) -> None:
        """Keep `record` (with an `id`) among the running sessions until untrack()."""
        with self._lock:
            self._sessions[record.id] = record

    def untrack(self, record) -> None:
        with self._lock:
            if self._sessions.pop(record.id, None) is not None:
                self.finished_sessions += 1

    def tracked(self) -> list:
        with self._lock:
            return list(self._sessions.values())


def profiling() -> bool:
    """True when FACECAST_PROFILE is set to 1 (checked at each call, so tests can toggle it)."""
    return env("PROFILE", "0") == "1"


def _profile_log(line: str) -> None:
    """Log a profile line at INFO; when logging is not configured (uvicorn configures only its own
    loggers), "facecast.live" gets a stderr handler first, so the line is seen."""
    if not live_log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        live_log.addHandler(handler)
        live_log.propagate = False
    if live_log.getEffectiveLevel() > logging.INFO:
        live_log.setLevel(logging.INFO)
    live_log.info(line)


class SessionStats:
    """Telemetry of one live-portrait session; its loops and stages also go to `telemetry` (all
    sessions' windows: "loop" and PORTRAIT_STAGES). Counters are plain ints, each updated from one thread.

    input_queue / output_queue: the session's queues (Sized, with `dropped`); read at each
    report, so depths are never stale copies.
    """

    _ids = itertools.count(1)

    def __init__(self, avatar: str = "", telemetry: Telemetry | None = None, input_queue: Sized | None = None,
                 output_queue: Sized | None = None):
        self.id = next(self._ids)
        self.avatar, self.telemetry = avatar, telemetry
        self.input_queue, self.output_queue = input_queue, output_queue
        self.started = time.time()
        self.loop = LatencyWindow(PORTRAIT_WINDOW)
        self.stages = {name: LatencyWindow(PORTRAIT_WINDOW) for name in PORTRAIT_STAGES}
        self.delivered = RateMeter()
        self.received = self.sent = self.no_face = self.bad_frames = self.bad_messages = 0

    @property
    def in_depth(self) -> int:
        """Items waiting in the input queue now."""
        return 0 if self.input_queue is None else len(self.input_queue)

    @property
    def dropped_in(self) -> int:
        """Stale input frames dropped so far."""
        return int(getattr(self.input_queue, "dropped", 0))

    @property
    def out_depth(self) -> int:
        """Frames and messages waiting in the output queue now."""
        return 0 if self.output_queue is None else len(self.output_queue)

    @property
    def dropped_out(self) -> int:
        """Items the output queue dropped so far (a client reading too slowly)."""
        return int(getattr(self.output_queue, "dropped", 0))

    def record_stages(self, times_ms: dict) -> None:
        """Stage durations of one processed frame (keys of PORTRAIT_STAGES)."""
        for name, ms in times_ms.items():
            if name in self.stages:
                self.stages[name].add(ms)
                if self.telemetry is not None:
                    self.telemetry.observe(name, ms)

    def record_sent(self, loop_ms: float) -> None:
        """A frame went out, `loop_ms` after its input arrived."""
        self.loop.add(loop_ms)
        if self.telemetry is not None:
            self.telemetry.observe("loop", loop_ms)
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


def live_stats(telemetry: Telemetry) -> dict:
    """What /stats and /live/stats show about live-portrait sessions recorded in `telemetry`: recent
    loop and stage latency of all sessions (ms percentiles), and each running session's record."""
    sessions = telemetry.tracked()
    return {
        "active_sessions": len(sessions), "finished_sessions": telemetry.finished_sessions,
        "loop_ms": telemetry.summary("loop"),
        "stages_ms": {k: telemetry.summary(k) for k in PORTRAIT_STAGES},
        "delivered_fps": round(sum(s.delivered.rate() for s in sessions), 2),
        "sessions": [s.snapshot() for s in sessions],
    }
