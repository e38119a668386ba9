"""A peer's playout clock: when each packet of the session's stream is sent, for both tracks.

Stream time t (s) - frame f is at f / fps, 48 kHz audio sample n at n / 48000 - is sent at wall
time anchor + t (time.monotonic() s). Both tracks of a peer wait on the same anchor, so what the
browser receives keeps the stream's own audio/video alignment; since the anchor is fixed, nothing
drifts, however long the call.

The anchor is set by the first keyframe the peer gets: it plays `delay` s after it arrived.
A packet that arrives after its time is sent at once; one more than `resync_s` late (the stream
stalled) moves the anchor later, and a backlog of more than `max_ahead_s` (the peer could not keep
up, or a stall ended in a burst) moves it earlier, so latency never grows without bound.
"""

from __future__ import annotations

import time
from typing import Callable


class Playout:
    """Stream time -> wall time for one peer. Used on the event loop only.

    delay: s between a keyframe's arrival and its sending; resync_s: lateness (s) that re-anchors;
    max_ahead_s: s of stream a peer may hold before its time, None for no limit (a clip's
    producer is held back instead); now: the time source (injectable for tests).
    """

    def __init__(self, *, delay: float, resync_s: float, max_ahead_s: float | None,
                 now: Callable[[], float] = time.monotonic):
        self.delay, self.resync_s, self.max_ahead_s, self.now = delay, resync_s, max_ahead_s, now
        self.anchor: float | None = None  # wall time of stream time 0; None until the first keyframe
        self.resyncs = 0  # times the anchor moved (a stall, or a backlog dropped)
        self.newest = 0.0  # stream time of the newest packet received (s)

    @property
    def started(self) -> bool:
        return self.anchor is not None

    def start(self, t: float) -> None:
        """The first keyframe, at stream time t, arrived now."""
        self.anchor = self.now() + self.delay - t
        self.newest = t

    def arrived(self, t: float) -> None:
        """A packet of stream time t arrived now: re-anchor when it is far too late or too early."""
        now = self.now()
        self.newest = max(self.newest, t)
        lateness = now - self.wall(t)
        if lateness > self.resync_s or (self.max_ahead_s is not None and -lateness > self.max_ahead_s + self.delay):
            self.anchor = now + self.delay - t
            self.resyncs += 1

    def wall(self, t: float) -> float:
        """Wall time (time.monotonic() s) at which stream time t is sent."""
        return self.anchor + t

    def wait_s(self, t: float) -> float:
        """Seconds until stream time t is due (0 when it is due or past)."""
        return max(0.0, self.wall(t) - self.now())

    def ahead_s(self) -> float:
        """Seconds of stream received beyond what is due now (the peer's backlog)."""
        return 0.0 if self.anchor is None else max(0.0, self.newest - (self.now() - self.anchor))
