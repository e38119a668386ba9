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
