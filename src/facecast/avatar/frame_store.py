"""Compressed storage of a video avatar's frames, decoded on demand.

A cache entry keeps the frames as one JPEG per frame, concatenated in `frames.jpgs`, with
`frames.index.npy` holding the F + 1 byte offsets (int64) of frame starts and the file end.
A 30 s 1024x1024 avatar takes about a tenth of its raw size on disk and nothing in memory
until frames are asked for: `FrameStore` reads a frame with one `pread`, decodes it, keeps
up to DECODED_FRAMES_MB of decoded frames (least recently used go first) and decodes the
next few frames of the current direction of play on a helper thread (OpenCV releases the
GIL while decoding).

A FrameStore answers like the (F, H, W, 3) uint8 array it replaces for what renderers do
with it: `shape`, `len`, `store[i]`, `store[indices]`, `store[a:b]`, `store[i, ...]`,
`np.asarray(store)` (decodes every frame: only for small avatars or tests).
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from facecast.lru import LRU

BLOB = "frames.jpgs"
INDEX = "frames.index.npy"
JPEG_QUALITY = 95  # stored frames: about 0.1 of raw size, < 1 grey level mean error
DECODED_FRAMES_MB = 64  # decoded frames kept per avatar (the newest always, whatever its size)
DECODE_AHEAD = 4  # frames decoded ahead on the helper thread in the direction of play


class DamagedFrames(ValueError):
    """The stored frames are incomplete or not what the entry's metadata says."""


class FrameWriter:
    """Append (H, W, 3) uint8 BGR frames as JPEG to `folder`; `close()` writes the index."""

    def __init__(self, folder: Path, quality: int = JPEG_QUALITY):
        self.folder, self.quality = Path(folder), quality
        self._fh = (self.folder / BLOB).open("wb")
        self._offsets = [0]
        self.shape: tuple[int, int, int] | None = None

    def add(self, frame: np.ndarray) -> None:
        if self.shape is None:
            self.shape = tuple(frame.shape)
        elif tuple(frame.shape) != self.shape:
            raise ValueError(f"frame of shape {frame.shape} in a store of {self.shape} frames")
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("OpenCV could not encode a frame as JPEG")
        self._fh.write(data.tobytes())
        self._offsets.append(self._offsets[-1] + len(data))

    @property
    def count(self) -> int:
        return len(self._offsets) - 1

    def close(self) -> None:
        self._fh.close()
        np.save(self.folder / INDEX, np.asarray(self._offsets, np.int64))

    def abort(self) -> None:
        self._fh.close()


def write_frames(folder: Path, frames: Iterable[np.ndarray]) -> int:
    """Store every frame of `frames` in `folder`; returns how many."""
    writer = FrameWriter(folder)
    try:
        for frame in frames:
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.count


def has_frames(folder: Path) -> bool:
    return (Path(folder) / INDEX).is_file()


class FrameStore:
    """Read-only frames (F, H, W, 3) uint8 BGR of `folder`, decoded on demand.

    Raises DamagedFrames when the files are missing, truncated, or hold another number of
    frames than `count` (or, with `shape`, frames of another size)."""

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, folder: Path, count: int, shape: tuple[int, int] | None = None,
                 cache_mb: float = DECODED_FRAMES_MB):
        folder = Path(folder)
        try:
            offsets = np.load(folder / INDEX)
            fd = os.open(folder / BLOB, os.O_RDONLY)
        except (OSError, ValueError, EOFError) as exc:
            raise DamagedFrames(f"stored frames unreadable ({exc})") from None
        self._fd = fd
        self._close = weakref.finalize(self, os.close, fd)
        self._offsets = offsets
        self._check(count, os.fstat(fd).st_size)
        first = self._decode(0)
        if shape is not None and first.shape[:2] != tuple(shape):
            raise DamagedFrames(f"stored frames are {first.shape[1]}x{first.shape[0]}, expected "
                                f"{shape[1]}x{shape[0]}")
        self.shape = (count,) + first.shape
        self._lru: LRU[int, np.ndarray] = LRU(cache_mb * 2**20, cost=lambda a: a.nbytes)
        self._lru.put(0, first)
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._last = -1

    def _check(self, count: int, size: int) -> None:
        o = self._offsets
        if o.ndim != 1 or len(o) != count + 1 or o[0] != 0 or np.any(np.diff(o) <= 0) or o[-1] != size:
            raise DamagedFrames(f"stored frames do not match: index of {len(o) - 1} frame(s) ending at byte "
                                f"{int(o[-1]) if len(o) else 0}, expected {count} in a {size}-byte file")
        for start, stop in zip(o[:-1], o[1:]):  # every frame starts and ends with a JPEG marker
            if os.pread(self._fd, 2, int(start)) != b"\xff\xd8" or os.pread(self._fd, 2, int(stop) - 2) != b"\xff\xd9":
                raise DamagedFrames(f"stored frame at byte {int(start)} is not a whole JPEG image")

    # -- array-like ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes the frames take decoded (what np.asarray(store) would allocate)."""
        return int(np.prod(self.shape))

    def __getitem__(self, key):
        if isinstance(key, tuple):  # frames first, then the rest of the key on each frame
            head, rest = key[0], key[1:]
            if not isinstance(head, slice) and np.ndim(head) == 0:
                return self.frame(int(head))[rest]
            picked = self._indices(head)
            first = self.frame(picked[0])[rest] if picked else np.empty(0, np.uint8)
            out = np.empty((len(picked),) + first.shape, np.uint8)
            for j, i in enumerate(picked):
                out[j] = self.frame(i)[rest]
            return out
        if not isinstance(key, slice) and np.ndim(key) == 0:
            return self.frame(int(key))
        return self._stack(self._indices(key))

    def _indices(self, key) -> list[int]:
        """Frame numbers selected by a slice or an array/list of ints."""
        if isinstance(key, slice):
            return list(range(*key.indices(len(self))))
        return [int(i) for i in np.asarray(key).ravel()]

    def __iter__(self):
        for i in range(len(self)):
            yield self.frame(i)

    def __array__(self, dtype=None, copy=None):
        out = self._stack(range(len(self)))
        return out if dtype is None else out.astype(dtype)

    def _stack(self, indices) -> np.ndarray:
        indices = list(indices)
        out = np.empty((len(indices),) + self.shape[1:], np.uint8)
        for j, i in enumerate(indices):
            out[j] = self.frame(int(i))
        return out

    # -- decoding ------------------------------------------------------------------------
    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (negative counts from the end): (H, W, 3) uint8 BGR, read-only."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range for {n} frames")
        index %= n
        found = self._lru.get(index)
        if found is None:
            with self._lock:
                pending = self._pending.get(index)
            found = pending.result() if pending is not None else self._decode_keep(index)
        self._ahead(index)
        return found

    def _ahead(self, index: int) -> None:
        """Decode the next frames in the direction of play on the helper thread."""
        step = index - self._last
        self._last = index
        if step not in (1, -1):
            return
        for k in range(1, DECODE_AHEAD + 1):
            j = index + k * step
            if not 0 <= j < len(self):
                break
            with self._lock:
                if j in self._pending or j in self._lru:
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="facecast-frames")
                    weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
                future = self._pool.submit(self._decode_keep, j)
                self._pending[j] = future

    def _decode_keep(self, index: int) -> np.ndarray:
        try:
            frame = self._decode(index)
            self._lru.put(index, frame)
            return frame
        finally:
            with self._lock:
                self._pending.pop(index, None)

    def _decode(self, index: int) -> np.ndarray:
        start, stop = int(self._offsets[index]), int(self._offsets[index + 1])
        data = os.pread(self._fd, stop - start, start)
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if frame is None or len(data) != stop - start:
            raise DamagedFrames(f"stored frame {index} cannot be decoded")
        frame.flags.writeable = False
        return frame
