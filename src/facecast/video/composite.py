"""New backgrounds: put the person (selfie-segmentation matte, smoothed over 3 frames) over a
still image or a looping video."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from facecast.errors import CorruptMedia, UnsupportedMedia
from facecast.media.probe import sniff
from facecast.video.stream import frames, probe

MATTE_FEATHER_PX = 1.5  # Gaussian sigma softening the matte edge
CACHE_FRAMES = 16  # background video frames kept for re-reads (segment run-ins)


def cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale (h, w, 3) uint8 to cover `size` (w, h) and crop the centre -> (H, W, 3) uint8."""
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0])
    sw, sh = max(w, int(np.ceil(image.shape[1] * scale))), max(h, int(np.ceil(image.shape[0] * scale)))
    resized = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0, y0 = (sw - w) // 2, (sh - h) // 2
    return np.ascontiguousarray(resized[y0:y0 + h, x0:x0 + w])


class Background:
    """A new background for frames of `size` (w, h): an image, or a video that loops.

    `frame(n)` returns (H, W, 3) uint8 BGR for output frame n.
    """

    def __init__(self, path: str | Path, size: tuple[int, int]):
        self.path, self.size = Path(path), tuple(size)
        self._still: np.ndarray | None = None
        self._cache: dict[int, np.ndarray] = {}
        self._iter, self._next = None, 0
        if _is_image(self.path):
            self._still = cover(_read_image(self.path), self.size)
        else:
            self._info = probe(self.path)
            self._count = max(1, self._info.frame_count)

    def frame(self, number: int) -> np.ndarray:
        if self._still is not None:
            return self._still
        index = int(number) % self._count
        if index not in self._cache:
            self._cache[index] = cover(self._read(index), self.size)
            for old in sorted(self._cache)[:-CACHE_FRAMES]:
                del self._cache[old]
        return self._cache[index]

    def _read(self, index: int) -> np.ndarray:
        """Frame `index` of the background video, reading forward (reopening to go back)."""
        if self._iter is None or index < self._next:
            self._iter, self._next = frames(self._info), 0
        frame = next(islice(self._iter, index - self._next, None), None)
        if frame is None:
            raise CorruptMedia(f"{self.path}: background video ended before frame {index}")
        self._next = index + 1
        return frame


def put_over(frame: np.ndarray, matte: np.ndarray, background: np.ndarray) -> np.ndarray:
    """One frame of the person over a background. frame, background: (H, W, 3) uint8;
    matte: (H, W) float32 in [0, 1] (1 = person) -> (H, W, 3) uint8 (a new array).

    Works on one frame at a time, so its float temporaries are a few frames' worth whatever
    the segment length."""
    soft = cv2.GaussianBlur(matte, (0, 0), MATTE_FEATHER_PX)[..., None]
    out = background.astype(np.float32)
    out += (frame.astype(np.float32) - out) * soft
    out += 0.5
    return out.astype(np.uint8)


def _is_image(path: Path) -> bool:
    if not path.is_file():
        raise UnsupportedMedia(f"{path}: no such background file")
    with path.open("rb") as fh:
        return sniff(fh.read(256)).kind == "image"


def _read_image(path: Path) -> np.ndarray:
    from facecast.media.reader import read_visual

    return read_visual(path, max_long_side=4096).frames[0]
