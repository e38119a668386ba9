"""Segment plans: where a long video is cut so that one segment at a time is in memory.

Cuts go to the quietest moment (least picture change over the cross-fade window) near
evenly spaced positions; with no usable motion signal they stay evenly spaced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facecast.errors import InvalidArgument
from facecast.video.defaults import DEFAULT_OVERLAP

SEARCH = 0.15  # a cut may move this fraction of a segment's length from its even position
FLAT = 1e-3  # grey levels: a motion signal varying less than this carries no information


@dataclass(frozen=True)
class Segment:
    """Frames [start, stop) of a video; `cut` says how its start was chosen:
    "start" (frame 0), "motion" (quietest nearby moment) or "uniform" (even spacing)."""

    index: int
    start: int
    stop: int
    cut: str

    @property
    def length(self) -> int:
        return self.stop - self.start


def segment_count(frame_count: int, *, count: int = 0, max_frames: int, overlap: int) -> int:
    """How many segments: at least `count`, enough that none exceeds `max_frames` even after
    its cuts move by SEARCH, and few enough that each is longer than 2 x overlap."""
    if count < 0:
        raise InvalidArgument(f"segments={count!r} must be 0 (automatic) or more")
    if max_frames < 1:
        raise InvalidArgument(f"max segment length {max_frames!r} frames must be at least 1")
    needed = math.ceil(frame_count * (1 + 2 * SEARCH) / max_frames)
    most = max(1, frame_count // (2 * overlap + 2))
    return max(1, min(max(count, needed), most))


def plan_segments(frame_count: int, motion: np.ndarray | None = None, *, count: int = 0,
                  max_frames: int = 250, overlap: int = DEFAULT_OVERLAP) -> list[Segment]:
    """Cut [0, frame_count) into segments.

    motion: (frame_count,) float, how much the picture changes at each frame (e.g. mean
    absolute difference to the previous frame), or None for even spacing.
    """
    if overlap < 0:
        raise InvalidArgument(f"overlap={overlap!r} must be 0 or more frames")
    if frame_count < 1:
        raise InvalidArgument(f"frame_count={frame_count!r}: nothing to cut")
    k = segment_count(frame_count, count=count, max_frames=max_frames, overlap=overlap)
    even = [round(j * frame_count / k) for j in range(1, k)]
    usable = motion is not None and len(motion) == frame_count and float(np.ptp(motion)) > FLAT
    cuts = [_quiet_cut(motion, u, frame_count / k, overlap) for u in even] if usable else even
    bounds = [0, *cuts, frame_count]
    kinds = ["start"] + ["motion" if usable else "uniform"] * (k - 1)
    return [Segment(i, bounds[i], bounds[i + 1], kinds[i]) for i in range(k)]


def _quiet_cut(motion: np.ndarray, even: int, length: float, overlap: int) -> int:
    """The frame near `even` whose cross-fade window, frames [cut - overlap, cut], changes least."""
    reach = int(SEARCH * length)
    lo, hi = max(overlap + 1, even - reach), min(len(motion) - overlap - 1, even + reach)
    if lo >= hi:
        return even
    sums = np.concatenate([[0.0], np.cumsum(motion, dtype=np.float64)])
    candidates = np.arange(lo, hi + 1)
    score = sums[candidates + 1] - sums[candidates - overlap] + 1e-9 * np.abs(candidates - even)
    return int(candidates[np.argmin(score)])  # ties go to the cut closest to the even position
