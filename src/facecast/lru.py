"""A small thread-safe least-recently-used map bounded by a total cost (bytes, items, ...)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Keeps values while the sum of their costs stays within `capacity`; the least recently
    used go first. cost(value) defaults to 1 (a count of items). The newest value is always
    kept, even when it alone exceeds the capacity."""

    def __init__(self, capacity: float, cost: Callable[[V], float] = lambda v: 1):
        self.capacity, self._cost = capacity, cost
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._total = 0.0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V) -> None:
        cost = float(self._cost(value))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._items[key] = (value, cost)
            self._total += cost
            while self._total > self.capacity and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._total -= dropped

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def total(self) -> float:
        """Sum of the costs of the values kept."""
        with self._lock:
            return self._total
