"""A bounded least-recently-used map, for caches of loaded avatars, rigs, decoded frames and
device tensors. Thread-safe.

Bounded by a total cost: by default every value costs 1 (a count of entries); `cost=` measures
values otherwise (bytes of decoded frames, for example).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Keeps values while the sum of their costs stays within `capacity`; `get` and `put` make an
    entry the most recent, and `put` evicts the least recent ones beyond capacity, calling
    `on_evict(key, value)` for each (outside the lock). The newest value is always kept, even
    when it alone costs more than the capacity."""

    def __init__(self, capacity: float, on_evict: Callable[[K, V], None] | None = None, *,
                 cost: Callable[[V], float] | None = None):
        if not capacity > 0:
            raise ValueError(f"capacity={capacity!r} must be positive")
        self.capacity = capacity
        self._on_evict = on_evict
        self._cost = cost
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._total = 0.0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value of `key` (now the most recent), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V) -> None:
        """Store `value` as the most recent entry, evicting the least recent beyond capacity."""
        cost = 1.0 if self._cost is None else float(self._cost(value))
        evicted: list[tuple[K, V]] = []
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            self._items[key] = (value, cost)
            self._total += cost
            while self._total > self.capacity and len(self._items) > 1:
                old_key, (old_value, old_cost) = self._items.popitem(last=False)
                self._total -= old_cost
                evicted.append((old_key, old_value))
        if self._on_evict is not None:
            for old_key, old_value in evicted:
                self._on_evict(old_key, old_value)

    def pop(self, key: K) -> V | None:
        """Remove `key` (no eviction callback); its value, or None."""
        with self._lock:
            item = self._items.pop(key, None)
            if item is None:
                return None
            self._total -= item[1]
            return item[0]

    def __getitem__(self, key: K) -> V:
        """The value of `key` without counting as a use; KeyError when absent."""
        with self._lock:
            return self._items[key][0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[K]:
        """Keys from the least to the most recently used."""
        with self._lock:
            return list(self._items)

    @property
    def total(self) -> float:
        """Sum of the costs of the values kept."""
        with self._lock:
            return self._total
