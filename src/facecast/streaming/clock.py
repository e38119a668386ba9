"""The wall clock a live stream is paced by: which frames are due, how long to wait, and re-sync.

Frame k of a live stream is due at anchor + (k + offset) / fps seconds, where `offset` (frames)
lets a caller run ahead of the clock (negative) or hold back for audio on its way (positive).
After a stall (the machine paused, a render took far too long) the stream would owe a burst of
frames; instead the clock re-anchors so that the next frame is due now.
"""

from __future__ import annotations

import math
import time
from typing import Callable


class LiveClock:
    """Paces `fps` frames per second against `now()` (seconds, monotonic; injectable for tests).

    resync_s: seconds behind the clock after which it re-anchors (a stall, not a hiccup).
    """

    def __init__(self, fps: int, resync_s: float, now: Callable[[], float] = time.monotonic):
        if fps <= 0:
            raise ValueError(f"fps={fps!r} must be positive")
        self.fps, self.resync_s, self.now = fps, resync_s, now
        self.anchor = now()  # s: when frame 0 is due (offset 0)
        self.resyncs = 0

    def start(self) -> None:
        """Anchor the clock at now: frame 0 is due at once."""
        self.anchor = self.now()

    def due(self, produced: int, offset: int, now: float | None = None) -> int:
        """How many frames from `produced` on are due at `now` (<= 0: none yet)."""
        now = self.now() if now is None else now
        return int(math.floor((now - self.anchor) * self.fps - offset)) - produced + 1

    def wait_s(self, produced: int, offset: int, now: float | None = None) -> float:
        """Seconds until frame `produced` is due (at least 1 ms, so a waiter never spins)."""
        now = self.now() if now is None else now
        return max(0.001, self.anchor + (produced + offset) / self.fps - now)

    def behind_s(self, produced: int, now: float | None = None) -> float:
        """Seconds the stream (`produced` frames made) trails the clock."""
        now = self.now() if now is None else now
        return (now - self.anchor) - produced / self.fps

    def resync(self, produced: int, now: float | None = None) -> bool:
        """Re-anchor when more than resync_s behind, so frame `produced` is due now; True when it did."""
        now = self.now() if now is None else now
        if self.behind_s(produced, now) <= self.resync_s:
            return False
        self.anchor = now - produced / self.fps
        self.resyncs += 1
        return True
