"""facecast.lru.LRU: the least recently used entry goes first, reads count as use."""

from __future__ import annotations

import pytest

from facecast.lru import LRU


def test_the_least_recently_used_entry_is_evicted_and_reported():
    evicted = []
    cache = LRU(3, lambda key, value: evicted.append((key, value)))
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # "a" is now the most recent; "b" the least
    cache.put("d", "D")
    assert evicted == [("b", "B")]
    assert "b" not in cache and cache.get("b") is None
    assert cache.keys() == ["c", "a", "d"] and len(cache) == 3
    cache.put("c", "C2")  # replacing a value makes it the most recent, evicts nothing
    cache.put("e", "E")
    assert evicted == [("b", "B"), ("a", "A")]
    assert cache.keys() == ["d", "c", "e"] and cache.get("c") == "C2"


def test_pop_removes_without_the_eviction_callback():
    evicted = []
    cache = LRU(2, lambda key, value: evicted.append(key))
    cache.put(1, "one")
    assert cache.pop(1) == "one" and cache.pop(1) is None
    assert len(cache) == 0 and evicted == []


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        LRU(0)
