"""Bounded hand-offs between threads, where droppable items (frames) give way to newer ones.

LatestQueue: any thread -> one worker thread (blocking get). Channel: any thread -> one asyncio
task (awaitable get); it is the one way worker threads hand things to the event loop (segments'
doorbells, first-frame notices, back-pressure, live-portrait output). Both keep their items in
order; non-droppable items (commands, messages) are never dropped for a droppable one, so a
sender that floods frames cannot reorder or lose what must arrive.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_KEPT = 64  # non-droppable items waiting at most before the oldest item goes (a reader that never reads)


class _Bounded(Generic[T]):
    """The shared bookkeeping: (item, droppable) pairs in order, `dropped` counted. Callers lock."""

    def __init__(self, maxsize: int, max_kept: int):
        if maxsize < 1:
            raise ValueError(f"maxsize={maxsize!r}: must be at least 1")
        self.maxsize, self.max_kept = maxsize, max_kept
        self._items: collections.deque = collections.deque()
        self._closed = False
        self.dropped = 0

    def _add(self, item: T, droppable: bool) -> int:
        """Append; returns how many waiting items were dropped to make room (0 or 1)."""
        dropped = 0
        if droppable and sum(d for _, d in self._items) >= self.maxsize:
            oldest = next(i for i, (_, d) in enumerate(self._items) if d)
            del self._items[oldest]
            dropped = 1
        elif len(self._items) >= self.maxsize + self.max_kept:
            self._items.popleft()
            dropped = 1
        self._items.append((item, droppable))
        self.dropped += dropped
        return dropped

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed


class LatestQueue(_Bounded[T]):
    """Thread-safe queue from producers to one worker thread; put() never blocks.

    At most `maxsize` droppable items wait (the oldest goes when full). get() blocks (no
    busy-wait) and returns items in order; with `newest_only`, a droppable item directly followed
    by another droppable one is stale and dropped at get(). close() wakes get(), which returns None.
    """

    def __init__(self, maxsize: int = 2, newest_only: bool = True, max_kept: int = MAX_KEPT):
        super().__init__(maxsize, max_kept)
        self.newest_only = newest_only
        self._cond = threading.Condition()

    def put(self, item: T, droppable: bool = True) -> int:
        """Add `item`; returns how many old items were dropped to make room (0 or 1). Items put
        after close() are dropped."""
        with self._cond:
            if self._closed:
                self.dropped += 1
                return 1
            dropped = self._add(item, droppable)
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """The next item (skipping stale frames); None once closed or after `timeout` s without one."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            while self.newest_only and len(self._items) > 1 and self._items[0][1] and self._items[1][1]:
                self._items.popleft()
                self.dropped += 1
            return self._items.popleft()[0]

    def clear(self) -> int:
        """Drop the droppable items waiting; returns how many that was."""
        with self._cond:
            kept = collections.deque(pair for pair in self._items if not pair[1])
            n = len(self._items) - len(kept)
            self._items = kept
            self.dropped += n
            return n

    def close(self) -> None:
        """Stop the queue: waiting and future get() calls return None. Idempotent."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Channel(_Bounded[T]):
    """Items from any thread to one asyncio consumer: put() never blocks, `await get()` waits.

    The consumer's loop is woken with loop.call_soon_threadsafe only while it waits. A
    Channel(maxsize=1) fed with put(True) is a doorbell: rings coalesce, none is lost. After
    close(), get() returns what is still waiting, then None.
    """

    def __init__(self, maxsize: int = 2, max_kept: int = MAX_KEPT):
        super().__init__(maxsize, max_kept)
        self._lock = threading.Lock()
        self._waiter: asyncio.Future | None = None

    def put(self, item: T, droppable: bool = True) -> bool:
        """Add `item` (any thread); False when the channel is closed."""
        with self._lock:
            if self._closed:
                return False
            self._add(item, droppable)
            waiter, self._waiter = self._waiter, None
        _wake(waiter)
        return True

    async def get(self) -> T | None:
        """The oldest item; waits for one; None once closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()[0]
                if self._closed:
                    return None
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None

    def get_nowait(self) -> T | None:
        """The oldest item, or None when nothing waits."""
        with self._lock:
            return self._items.popleft()[0] if self._items else None

    def close(self) -> None:
        """Wake the consumer; items already waiting are still delivered, then None. Idempotent."""
        with self._lock:
            self._closed = True
            waiter, self._waiter = self._waiter, None
        _wake(waiter)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _wake(waiter: asyncio.Future | None) -> None:
    """Resolve `waiter` on its own loop, from any thread; a closed loop is going away: ignored."""
    if waiter is None:
        return
    try:
        waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
    except RuntimeError:
        pass


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
