"""Per-segment stages for the segment runner: each takes (frames (n, H, W, 3) uint8 BGR,
frame numbers (n,) int64) and returns processed frames of the same shape, and starts from a
clean state on every call (every segment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from facecast.video.composite import Background, put_over
from facecast.video.footlock import FootlockSettings, lock_feet
from facecast.video.matte import PERSON_THRESHOLD, PersonSegmenter
from facecast.video.stabilize import reshake_frame, stabilize_frame
from facecast.video.temporal import Box, FlowBlender, TemporalSettings

Lookup = Callable[[int], object]  # frame number -> per-frame data (a warp, a box, a frame, ...)


@dataclass
class Stabilize:
    """Warp each frame onto the smooth camera path. warps: (F, 3, 3) stabilising warps."""

    warps: np.ndarray

    def __call__(self, frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        for i, n in enumerate(numbers):
            frames[i] = stabilize_frame(frames[i], self.warps[n])
        return frames


@dataclass
class Reshake:
    """Put stabilised frames back on the original camera path.

    warp(n): (3, 3) stabilising warp of output frame n. original(n): the original
    (H, W, 3) uint8 frame and region(n): a (4, 2) polygon in stabilised px around what
    changed, both optional: with them, only that region is warped back and pasted.
    """

    warp: Lookup
    original: Lookup | None = None
    region: Lookup | None = None

    def __call__(self, frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        for i, n in enumerate(numbers):
            original = self.original(n) if self.original else None
            region = self.region(n) if self.region else None
            frames[i] = reshake_frame(frames[i], self.warp(n), original, region)
        return frames


@dataclass
class Temporal:
    """Flow-guided blending of the region box(n) (None: whole frame), reset per segment."""

    box: Callable[[int], Box | None] = lambda n: None
    settings: TemporalSettings = field(default_factory=TemporalSettings)

    def __call__(self, frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        blender = FlowBlender(self.settings)
        for i, n in enumerate(numbers):
            frames[i] = blender(frames[i], self.box(int(n)))  # the blender keeps its own copy
        return frames


@dataclass
class Composite:
    """The person over a new background (mattes smoothed over 3 frames: the mean of t-1, t,
    t+1, the segment's ends reusing their own frame).

    Frames are matted and composited one at a time, in place, keeping three mattes: memory
    does not grow with the segment length beyond the frames themselves."""

    background: Background
    person_seen: bool = False

    def __post_init__(self) -> None:
        self._segmenter = PersonSegmenter()

    def __call__(self, frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        n = len(frames)
        if n == 0:
            return frames
        prev, cur = None, self._segmenter.matte(frames[0])
        for i in range(n):
            nxt = self._segmenter.matte(frames[i + 1]) if i + 1 < n else cur  # before frame i+1 is overwritten
            soft = ((prev if prev is not None else cur) + cur + nxt) / 3.0
            self.person_seen |= bool((soft > PERSON_THRESHOLD).any())
            frames[i] = put_over(frames[i], soft, self.background.frame(int(numbers[i])))
            prev, cur = cur, nxt
        return frames

    def close(self) -> None:
        self._segmenter.close()


@dataclass
class Footlock:
    """Pin planted feet; keypoints from mediapipe pose, or from `keypoints(numbers)` ->
    (n, 2, 3, 2) px when given (known tracks). Counts what it saw for the report.

    The one thing kept from a call to the next is the offsets each foot was moved by, keyed
    by frame number (`_offsets`: frame -> (2, 2) px): the next segment's run-in frames are
    the last ones of this segment, and a contact spanning the cut keeps its anchor from them
    (lock_feet's `carried`). Frames not seen before get no carry, so calls out of order or
    on another video only lose that, never mix anchors."""

    fps: float
    settings: FootlockSettings = field(default_factory=FootlockSettings)
    keypoints: Callable[[np.ndarray], np.ndarray] | None = None
    scale: float | None = None  # body scale (px) of known keypoints; default: a quarter of the height
    person_frames: int = 0
    feet_frames: int = 0
    contact_frames: int = 0
    _offsets: dict = field(default_factory=dict, repr=False)

    def __call__(self, frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        points, scale = self._points(frames, numbers)
        self.feet_frames += int(np.isfinite(points).all(axis=3).any(axis=(1, 2)).sum())
        if not np.isfinite(points).any():
            self._offsets = {}
            return frames
        result = lock_feet(frames, points, fps=self.fps, scale=scale, settings=self.settings,
                           carried=self._carried(numbers))
        self._offsets = {int(n): result.offsets[i] for i, n in enumerate(numbers)}
        self.contact_frames += int(result.contacts.any(axis=1).sum())
        return result.frames

    def _carried(self, numbers: np.ndarray) -> np.ndarray:
        """(n, 2, 2) px offsets the previous call applied to frames `numbers` (NaN where none)."""
        none = np.full((2, 2), np.nan)
        return np.stack([self._offsets.get(int(n), none) for n in numbers])

    def _points(self, frames: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, float]:
        if self.keypoints is not None:
            return np.asarray(self.keypoints(numbers), np.float32), self.scale or frames.shape[1] / 4.0
        from facecast.video.pose import PoseTracker

        with PoseTracker() as tracker:
            tracks = tracker.track(frames)
        self.person_frames += int(tracks.person.sum())
        return tracks.points, tracks.scale(frames.shape[1])
