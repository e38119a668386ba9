"""The fan-out of one stream: its init segment and recent segments, shared by every reader.

The producer (a worker thread) appends; readers (asyncio tasks) hold only a cursor, so a slow
reader costs no memory of its own. What is kept:
  - for a clip, before any reader has attached: everything, from the first segment (the first
    reader sees the stream from t = 0; the producer waits instead of outrunning `max_lag`);
  - afterwards: the segments since the latest keyframe, plus what attached readers still need,
    at most `max_lag` segments; a reader that falls further behind jumps to the latest keyframe.
Other readers (and every reader of a live stream) start at the latest keyframe: a renewed
connection continues the stream where it is, generation never restarts.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque

from facecast.streaming.queues import Channel
from facecast.transports.fmp4.encoder import Fmp4Segment


class StreamEnded(Exception):
    """Raised to a reader when the stream is over (`error` says why, when it failed)."""

    def __init__(self, error: str | None = None):
        super().__init__(error or "stream ended")
        self.error = error


class SegmentFanout:
    """Init segment + recent segments of a stream; thread-safe; readers await new segments.

    max_lag: segments a reader may trail the newest one before it is moved to a keyframe;
    from_start: keep everything until the first reader comes and give it the stream from t = 0
    (a clip); else every reader starts at the latest keyframe (a live stream).
    """

    def __init__(self, max_lag: int, from_start: bool = True):
        self.max_lag, self.from_start = max_lag, from_start
        self._cond = threading.Condition()
        self._init: bytes | None = None
        self._segments: deque[Fmp4Segment] = deque()
        self._next_seq = 1  # seq of the next segment to arrive
        self._key_seq: int | None = None  # seq of the latest keyframe segment
        self._cursors: dict[int, int] = {}  # reader id -> seq it reads next
        self._doorbells: dict[int, Channel[bool]] = {}  # reader id -> rung when there is news
        self._ids = itertools.count(1)
        self._attached_ever = False
        self._closed = False
        self._error: str | None = None
        self.skipped = 0  # segments readers missed by jumping ahead
        self.idle_since = time.monotonic()  # when the last reader left (or creation)

    # -- producer side ----------------------------------------------------------------------
    def set_init(self, data: bytes) -> None:
        with self._cond:
            self._init = data
        self._wake_all()

    def append(self, segment: Fmp4Segment) -> None:
        """Add the next segment (seq must follow the previous one) and wake the readers."""
        with self._cond:
            segment.seq = self._next_seq
            self._next_seq += 1
            self._segments.append(segment)
            if segment.keyframe:
                self._key_seq = segment.seq
            self._trim()
        self._wake_all()

    def close(self, error: str | None = None) -> None:
        """No more segments; readers finish after what is kept (or at once on `error`)."""
        with self._cond:
            if self._closed:
                return
            self._closed, self._error = True, error
            self._cond.notify_all()
        self._wake_all()

    def wait_for_room(self, stop: threading.Event, timeout: float = 0.25) -> None:
        """Block the producer of a clip while readers trail by `max_lag` segments or more,
        or while nobody reads after someone did. Returns when there is room or `stop` is set."""
        with self._cond:
            while not stop.is_set() and self._lead() >= self.max_lag:
                self._cond.wait(timeout)

    def has_room(self) -> bool:
        """The producer may go on: its lead over the slowest reader is under max_lag segments."""
        with self._cond:
            return self._lead() < self.max_lag

    def _lead(self) -> int:
        """Segments the producer is ahead of the slowest reader (call with the lock held)."""
        if self._cursors:
            return self._next_seq - min(self._cursors.values())
        if not self._attached_ever:
            return self._next_seq - 1
        return self.max_lag  # everyone left: pause until a reader returns

    def _trim(self) -> None:
        """Drop segments no reader can need any more (call with the lock held)."""
        if self.from_start and not self._attached_ever and self._next_seq - 1 <= self.max_lag:
            return
        keep_from = self._key_seq if self._key_seq is not None else 1
        if self._cursors:
            keep_from = min(keep_from, max(min(self._cursors.values()), self._next_seq - self.max_lag))
        while self._segments and self._segments[0].seq < keep_from:
            self._segments.popleft()

    # -- reader side --------------------------------------------------------------------------
    def attach(self) -> int:
        """Register a reader; returns its id. It starts at t = 0 if it is the first, else at
        the latest keyframe."""
        with self._cond:
            rid = next(self._ids)
            first = self._segments[0].seq if self._segments else self._next_seq
            from_start = self.from_start and not self._attached_ever and first == 1
            self._cursors[rid] = 1 if from_start else (self._key_seq or first)
            self._doorbells[rid] = Channel(maxsize=1)
            self._attached_ever = True
            return rid

    def detach(self, rid: int) -> None:
        with self._cond:
            self._cursors.pop(rid, None)
            bell = self._doorbells.pop(rid, None)
            if bell is not None:
                bell.close()
            if not self._cursors:
                self.idle_since = time.monotonic()
            self._cond.notify_all()

    def take(self, rid: int) -> Fmp4Segment | None:
        """The reader's next segment, or None when it has to wait. Raises StreamEnded."""
        with self._cond:
            if self._error is not None:
                raise StreamEnded(self._error)
            cursor = self._cursors[rid]
            first = self._segments[0].seq if self._segments else self._next_seq
            if cursor < first:  # fell behind what is kept: continue at the latest keyframe
                target = self._key_seq if self._key_seq is not None and self._key_seq >= first else first
                self.skipped += target - cursor
                cursor = target
            if cursor >= self._next_seq:
                self._cursors[rid] = cursor
                if self._closed:
                    raise StreamEnded()
                return None
            self._cursors[rid] = cursor + 1
            self._cond.notify_all()
            return self._segments[cursor - first]

    async def init_segment(self, rid: int, timeout: float) -> bytes:
        """Wait for the init segment (the first frame encoded). Raises StreamEnded or TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                with self._cond:
                    if self._init is not None:
                        return self._init
                    if self._error is not None:
                        raise StreamEnded(self._error)
                    if self._closed:
                        raise StreamEnded()
                    bell = self._doorbells[rid]
                await bell.get()

    async def wait(self, rid: int) -> None:
        """Sleep until the producer adds a segment or closes the stream (or returns at once when
        it did since the reader last looked)."""
        bell = self._doorbells.get(rid)
        if bell is not None:
            await bell.get()

    # -- state ---------------------------------------------------------------------------------
    @property
    def readers(self) -> int:
        return len(self._cursors)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def mime_ready(self) -> bool:
        return self._init is not None

    @property
    def init(self) -> bytes | None:
        """The init segment (ftyp + moov), once the first frame is encoded."""
        return self._init

    def depth(self) -> dict:
        """Queue depths: segments kept, and how far the slowest reader trails (segments)."""
        with self._cond:
            lag = self._next_seq - min(self._cursors.values()) if self._cursors else 0
            return {"segments_kept": len(self._segments), "bytes_kept": sum(len(s.data) for s in self._segments),
                    "slowest_reader_lag": lag, "readers": len(self._cursors)}

    def _wake_all(self) -> None:
        with self._cond:
            bells = list(self._doorbells.values())
        for bell in bells:
            bell.put(True)
