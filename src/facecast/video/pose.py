"""Foot keypoints from mediapipe pose (the bundled full model, model_complexity=1)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from facecast.avatar.landmarks import mp, quiet_native_stderr  # noqa: E402

# mediapipe pose landmark numbers per foot (the person's left foot first): ankle, heel, toe tip
FEET = ((27, 29, 31), (28, 30, 32))
HIPS = (23, 24)
MIN_VISIBILITY = 0.5  # keypoints less visible than this count as missing
MODEL_COMPLEXITY = 1  # the only pose landmark model the mediapipe 0.10.21 wheel ships (full)
_lock = threading.Lock()


@dataclass(frozen=True)
class FootTracks:
    """points: (F, 2, 3, 2) float32 px, feet x (ankle, heel, toe) x (x, y); NaN where missing.
    leg: (F,) float32 px hip-to-ankle length (NaN where unknown); person: (F,) bool."""

    points: np.ndarray
    leg: np.ndarray
    person: np.ndarray

    @property
    def feet_seen(self) -> bool:
        return bool(np.isfinite(self.points).all(axis=3).any())

    def scale(self, height: int) -> float:
        """Body scale in px: the median leg length, or a quarter of the frame height."""
        finite = self.leg[np.isfinite(self.leg)]
        return float(np.median(finite)) if len(finite) else height / 4.0


class PoseTracker:
    """mediapipe pose; video mode tracks from frame to frame, `static` treats frames apart. One per thread."""

    def __init__(self, min_confidence: float = 0.5, *, static: bool = False):
        with _lock, quiet_native_stderr():
            self._pose = mp.solutions.pose.Pose(static_image_mode=static, model_complexity=MODEL_COMPLEXITY,
                                                smooth_landmarks=True, min_detection_confidence=min_confidence)
            self._pose.process(np.zeros((64, 64, 3), np.uint8))  # TFLite prints its set-up lines now, silenced

    def track(self, frames: Iterable[np.ndarray]) -> FootTracks:
        """frames: (H, W, 3) uint8 BGR in order -> their FootTracks."""
        points, legs, person = [], [], []
        for frame in frames:
            p, leg, found = self._feet(frame)
            points.append(p)
            legs.append(leg)
            person.append(found)
        return FootTracks(np.array(points, np.float32).reshape(-1, 2, 3, 2),
                          np.array(legs, np.float32), np.array(person, bool))

    def _feet(self, frame: np.ndarray) -> tuple[np.ndarray, float, bool]:
        h, w = frame.shape[:2]
        result = self._pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        points = np.full((2, 3, 2), np.nan, np.float32)
        if result.pose_landmarks is None:
            return points, float("nan"), False
        lm = result.pose_landmarks.landmark
        for f, ids in enumerate(FEET):
            for k, i in enumerate(ids):
                if lm[i].visibility >= MIN_VISIBILITY:
                    points[f, k] = (lm[i].x * w, lm[i].y * h)
        return points, _leg_length(lm, w, h), True

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> "PoseTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _leg_length(lm, w: int, h: int) -> float:
    """Mean hip-to-ankle length in px of the visible legs (NaN when none is visible)."""
    lengths = [np.hypot((lm[hip].x - lm[feet[0]].x) * w, (lm[hip].y - lm[feet[0]].y) * h)
               for hip, feet in zip(HIPS, FEET)
               if min(lm[hip].visibility, lm[feet[0]].visibility) >= MIN_VISIBILITY]
    return float(np.mean(lengths)) if lengths else float("nan")
