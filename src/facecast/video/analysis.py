"""The analysis pass: one streaming read of a video at a small size, measuring the camera
motion between frames and how much the picture changes (for segment cuts)."""

from __future__ import annotations

import logging
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
FIT_RATIO = 2.0  # the background fit is used unless its typical error is this many times the whole frame's

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysis:
    """steps: (F, 3, 3) float64 camera motion previous -> this frame, full-size px (steps[0] = I)
    change: (F,) float32 mean absolute grey-level change from the previous frame (change[0] = 0)
    inliers: (F,) int32 RANSAC inliers of each step (0: no estimate)
    tracking: where the camera motion was measured: "background" (person masked out),
        "whole frame", or "none" (camera not tracked)
    """

    info: VideoInfo
    steps: np.ndarray
    change: np.ndarray
    inliers: np.ndarray
    tracking: str = "whole frame"

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
    talking head does not count as camera motion; the whole frame is fitted as well, and the
    clip uses it instead when the background explains the motion much worse (a plain wall:
    few features, poorly tracked; see choose_tracking). Raises UnsupportedMedia for videos
    with fewer than `min_frames` frames.
    """
    small = analysis_size(info.size)
    factor = small[0] / info.size[0]
    tracker, steps, change, inliers = MotionTracker(), [], [], []
    whole_steps, whole_inliers, errors = [], [], []  # the whole-frame fit and (background, whole) errors
    segmenter = _segmenter() if ignore_person and track_camera else None
    prev = None
    try:
        for i, gray in enumerate(frames(info, gray_size=small)):
            if segmenter:
                step, whole = tracker.step_both(gray, _static_mask(segmenter, gray))
                whole_steps.append(rescale(whole.matrix, factor).ravel().tolist())
                whole_inliers.append(whole.inliers)
                errors.append((step.error, whole.error))
            else:
                step = tracker.step(gray) if track_camera else IDENTITY
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
    tracking = "none" if not track_camera else "whole frame"
    if segmenter:
        tracking = choose_tracking(np.array(errors[1:], np.float64).reshape(-1, 2))
        if tracking == "whole frame":
            steps, inliers = whole_steps, whole_inliers
    if track_camera:
        log.info("%s: camera motion measured on the %s", info.path, tracking)
    return Analysis(info, np.array(steps, np.float64).reshape(-1, 3, 3), np.array(change, np.float32),
                    np.array(inliers, np.int32), tracking)


def choose_tracking(errors: np.ndarray) -> str:
    """Which fit explains a clip's camera motion: "background" or "whole frame".

    errors: (F, 2) float64 standard errors (px; inf: no estimate) of the background and the
    whole-frame fit of each frame step. The background (person masked out) is preferred: the
    person's own motion biases the whole-frame fit in a way its residuals do not show. It is
    given up only when its typical (median) error is FIT_RATIO times the whole frame's."""
    if len(errors) == 0:
        return "background"
    background, whole = np.median(errors, axis=0)
    log.debug("fit errors: background %.3f px, whole frame %.3f px", background, whole)
    return "whole frame" if background > FIT_RATIO * whole else "background"


def _segmenter():
    from facecast.video.matte import PersonSegmenter

    return PersonSegmenter(model=1)


def _static_mask(segmenter, gray: np.ndarray) -> np.ndarray:
    """(h, w) uint8: 255 where no person is (with a margin), 0 on the person."""
    from facecast.video.matte import PERSON_THRESHOLD, grow

    person = segmenter.matte(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)) > PERSON_THRESHOLD
    person = grow(person, int(PERSON_GROW * max(gray.shape)))
    return np.where(person, 0, 255).astype(np.uint8)
