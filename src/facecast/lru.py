"""A bounded least-recently-used map, for caches of loaded avatars, rigs and device tensors.

Not thread-safe: callers that share one across threads hold their own lock around it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `capacity` entries; `get` and `put` make an entry the most recent, and `put` evicts
    the least recent ones beyond capacity, calling `on_evict(key, value)` for each."""

    def __init__(self, capacity: int, on_evict: Callable[[K, V], None] | None = None):
        if capacity < 1:
            raise ValueError(f"capacity={capacity!r} must be at least 1")
        self.capacity = capacity
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value of `key` (now the most recent), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store `value` as the most recent entry, evicting the least recent beyond capacity."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            old_key, old_value = self._items.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)

    def pop(self, key: K) -> V | None:
        """Remove `key` (no eviction callback); its value, or None."""
        return self._items.pop(key, None)

    def __getitem__(self, key: K) -> V:
        """The value of `key` without counting as a use; KeyError when absent."""
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        """Keys from the least to the most recently used."""
        return list(self._items)
