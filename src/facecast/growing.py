"""Growing: an array of rows that grows at its end and shrinks at its start in amortised O(1).

Live streams receive their data in thousands of small chunks (20 ms of audio, a few hops of
features); concatenating each chunk onto everything held would copy it all again every time.
"""

from __future__ import annotations

import numpy as np

MIN_CAPACITY = 1024  # rows of the first buffer an append allocates


class Growing:
    """Rows of one dtype (the initial array's, or `dtype`), appended at the end, dropped at the start."""

    def __init__(self, initial: np.ndarray, dtype=None):
        # Not copied when the dtype matches: the buffer is full, so the first append moves the rows
        # to a new one and the caller's array is never written (a clip's arrays are never copied).
        self._buf = np.asarray(initial, dtype)
        self._start, self._end = 0, len(self._buf)

    @property
    def array(self) -> np.ndarray:
        """The rows held, a view (valid until the next append)."""
        return self._buf[self._start:self._end]

    def append(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, self._buf.dtype)
        n = len(rows)
        if self._end + n > len(self._buf):
            held = self._end - self._start
            grown = np.empty((max(2 * (held + n), MIN_CAPACITY),) + self._buf.shape[1:], self._buf.dtype)
            grown[:held] = self._buf[self._start:self._end]
            self._buf, self._start, self._end = grown, 0, held
        self._buf[self._end:self._end + n] = rows
        self._end += n

    def drop(self, n: int) -> None:
        """Forget the first n rows."""
        self._start = min(self._end, self._start + n)

    def keep_last(self, n: int) -> None:
        """Forget all but the last n rows."""
        self.drop(max(0, len(self) - n))

    def __len__(self) -> int:
        return self._end - self._start
