"""Waiting for a condition instead of for a time."""

from __future__ import annotations

import time
from typing import Callable


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Poll `condition()` every 5 ms until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


async def until(seconds: float, condition: Callable[[], bool]) -> bool:
    """within() for a test on an event loop: polls every 10 ms without blocking the loop."""
    import asyncio

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
