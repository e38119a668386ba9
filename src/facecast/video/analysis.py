"""The analysis pass: one streaming read of a video at a small size, measuring the camera
motion between frames and how much the picture changes (for segment cuts)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.errors import UnsupportedMedia
from facecast.types import Progress
from facecast.video.motion import IDENTITY, MotionTracker
from facecast.video.stream import VideoInfo, frames
from facecast.video.transforms import rescale

ANALYSIS_LONG_SIDE = 480  # px: analysis frames are scaled to this long side
PERSON_GROW = 0.03  # fraction of the long side: margin around the person kept out of tracking


@dataclass(frozen=True)
class Analysis:
    """steps: (F, 3, 3) float64 camera motion previous -> this frame, full-size px (steps[0] = I)
    change: (F,) float32 mean absolute grey-level change from the previous frame (change[0] = 0)
    inliers: (F,) int32 RANSAC inliers of each step (0: no estimate)
    """

    info: VideoInfo
    steps: np.ndarray
    change: np.ndarray
    inliers: np.ndarray

    @property
    def frame_count(self) -> int:
        return len(self.steps)


def analysis_size(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of analysis frames for frames of `size`."""
    w, h = size
    scale = min(1.0, ANALYSIS_LONG_SIDE / max(w, h))
    return max(16, int(round(w * scale))), max(16, int(round(h * scale)))


def analyse(info: VideoInfo, *, track_camera: bool = True, ignore_person: bool = False, min_frames: int = 2,
            max_frames: int | None = None, progress: Progress | None = None) -> Analysis:
    """Measure camera motion and picture change of every frame, streaming.

    max_frames: analyse only the first frames (as many as a later step will use).
    track_camera: False skips the camera motion (steps are identities), for plans only.
    ignore_person: track features only outside the person (selfie segmentation), so that a
    talking head does not count as camera motion. Raises UnsupportedMedia for videos with
    fewer than `min_frames` frames.
    """
    small = analysis_size(info.size)
    factor = small[0] / info.size[0]
    tracker, steps, change, inliers = MotionTracker(), [], [], []
    segmenter = _segmenter() if ignore_person and track_camera else None
    prev = None
    try:
        for i, gray in enumerate(frames(info, gray_size=small)):
            step = tracker.step(gray, _static_mask(segmenter, gray) if segmenter else None) if track_camera \
                else IDENTITY
            # as Python floats: a small NumPy buffer kept per frame pins glibc's heap between the
            # frame-sized temporaries, and resident memory then grows ~30 KB per frame
            steps.append(rescale(step.matrix, factor).ravel().tolist())
            inliers.append(step.inliers)
            change.append(0.0 if prev is None else float(cv2.absdiff(gray, prev).mean()))
            prev = gray
            if max_frames is not None and i + 1 >= max_frames:
                break
            if progress:
                progress(i + 1, max(info.frame_count, i + 1))
    finally:
        if segmenter:
            segmenter.close()
    if len(steps) < min_frames:
        raise UnsupportedMedia(f"{info.path}: holds {len(steps)} frame(s); this command needs a video "
                               f"of at least {min_frames} frames")
    return Analysis(info, np.array(steps, np.float64).reshape(-1, 3, 3), np.array(change, np.float32),
                    np.array(inliers, np.int32))


def _segmenter():
    from facecast.video.matte import PersonSegmenter

    return PersonSegmenter(model=1)


def _static_mask(segmenter, gray: np.ndarray) -> np.ndarray:
    """(h, w) uint8: 255 where no person is (with a margin), 0 on the person."""
    from facecast.video.matte import PERSON_THRESHOLD, grow

    person = segmenter.matte(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)) > PERSON_THRESHOLD
    person = grow(person, int(PERSON_GROW * max(gray.shape)))
    return np.where(person, 0, 255).astype(np.uint8)
