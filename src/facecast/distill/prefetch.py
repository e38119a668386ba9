"""Preparing the next micro-batch's host-side part (picks, augmented crops) on a worker thread while
the device trains on the current one. Batches are pure functions of their key, so prefetching
changes nothing in what is trained."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class Prefetch(Generic[T]):
    """get(key, next_key) returns fn(key) (computed ahead when it was the previous call's next_key)
    and starts fn(next_key) on one worker thread."""

    def __init__(self, fn: Callable[[Hashable], T]):
        self.fn = fn
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[Hashable, Future] | None = None

    def get(self, key: Hashable, next_key: Hashable | None = None) -> T:
        ahead, self._ahead = self._ahead, None
        value = ahead[1].result() if ahead is not None and ahead[0] == key else self.fn(key)
        if next_key is not None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="distill-prefetch")
            self._ahead = (next_key, self._pool.submit(self.fn, next_key))
        return value

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead = None
