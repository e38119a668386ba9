"""Small types shared across packages."""

from __future__ import annotations

from typing import Callable

#: A progress callback: progress(done, total), both counts of frames (or other work items).
Progress = Callable[[int, int], None]
