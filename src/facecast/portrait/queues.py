"""Bounded queues that prefer the newest item: a live stream drops stale frames, never blocks
its producer, and holds a fixed amount of memory however fast frames arrive."""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestQueue(Generic[T]):
    """Thread-safe bounded queue for frames going from a producer to one worker thread.

    put() never blocks: when the queue is full its oldest item is dropped. get() blocks (no
    busy-wait) until an item arrives and returns the newest one; with `newest_only` the older
    items still waiting are stale and dropped too. Every dropped item is counted in `dropped`.
    close() wakes the waiting get(), which then returns None.
    """

    def __init__(self, maxsize: int = 2, newest_only: bool = True):
        if maxsize < 1:
            raise ValueError(f"maxsize={maxsize!r}: must be at least 1")
        self.maxsize, self.newest_only = maxsize, newest_only
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> int:
        """Add `item`; returns how many old items were dropped to make room (0 or 1).
        Items put after close() are dropped."""
        with self._cond:
            if self._closed:
                self.dropped += 1
                return 1
            dropped = 0
            while len(self._items) >= self.maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self.dropped += dropped
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Wait for an item and return it (the newest when `newest_only`); None once closed
        or after `timeout` seconds without an item."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            if not self.newest_only:
                return self._items.popleft()
            item = self._items.pop()
            self.dropped += len(self._items)
            self._items.clear()
            return item

    def clear(self) -> int:
        """Drop everything waiting; returns how many items that was."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.dropped += n
            return n

    def close(self) -> None:
        """Stop the queue: waiting and future get() calls return None. Idempotent."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class AsyncLatestQueue(Generic[T]):
    """The asyncio counterpart, for items going to a sender coroutine (one event loop only).

    put_nowait() never waits: when `maxsize` droppable items (frames) are waiting, the oldest
    of them is dropped (counted in `dropped`). Items put with droppable=False (messages) are
    kept unless `max_messages` of them wait already (a client that never reads), then the
    oldest item goes. `await get()` waits without busy-waiting and returns items oldest first,
    so messages and frames keep their order; after close() it returns None.
    """

    def __init__(self, maxsize: int = 2, max_messages: int = 64):
        if maxsize < 1:
            raise ValueError(f"maxsize={maxsize!r}: must be at least 1")
        self.maxsize, self.max_messages = maxsize, max_messages
        self._items: collections.deque = collections.deque()  # (item, droppable)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def put_nowait(self, item: T, droppable: bool = True) -> None:
        if self._closed:
            return
        if droppable and sum(d for _, d in self._items) >= self.maxsize:
            oldest = next(i for i, (_, d) in enumerate(self._items) if d)
            del self._items[oldest]
            self.dropped += 1
        elif len(self._items) >= self.maxsize + self.max_messages:
            self._items.popleft()
            self.dropped += 1
        self._items.append((item, droppable))
        self._ready.set()

    async def get(self) -> T | None:
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()[0]

    def close(self) -> None:
        """Wake the sender; items already waiting are still delivered, then None."""
        self._closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)
