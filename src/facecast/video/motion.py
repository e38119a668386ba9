"""Camera motion between consecutive frames: corner features tracked with pyramidal
Lucas-Kanade optical flow, a partial-affine (similarity) fit with RANSAC, and how precise
that fit is (the residual of its inliers over the square root of their count)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_FEATURES = 300
MIN_FEATURES = 30  # fewer background features than this: use the whole frame
MIN_INLIERS = 8  # fewer RANSAC inliers than this: no motion estimate (identity)
RANSAC_PX = 1.5  # px at analysis size: reprojection error of an inlier
FB_PX = 1.0  # px: forward-backward tracking error of a kept feature


@dataclass(frozen=True)
class MotionStep:
    """Motion from the previous frame to this one.

    matrix: (3, 3) float64 similarity, previous-frame px -> this-frame px (analysis size)
    inliers: RANSAC inliers behind it (0: no estimate, identity)
    residual: RMS reprojection error of the inliers, px at analysis size
    """

    matrix: np.ndarray
    inliers: int
    residual: float = 0.0

    @property
    def error(self) -> float:
        """Standard error of the fit, px at analysis size: residual / sqrt(inliers); inf
        without an estimate. A plain background gives few, poorly tracked features: large."""
        return self.residual / np.sqrt(self.inliers) if self.inliers else float("inf")


IDENTITY = MotionStep(np.eye(3), 0)


class MotionTracker:
    """Feed greyscale frames in order; each call returns the motion since the previous one."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None

    def step(self, gray: np.ndarray, static_mask: np.ndarray | None = None) -> MotionStep:
        """gray: (h, w) uint8; static_mask: (h, w) uint8, 255 where the scene is static
        (the background), or None. Returns IDENTITY for the first frame."""
        prev, self._prev = self._prev, gray
        if prev is None:
            return IDENTITY
        points = _features(prev, static_mask)
        if points is None:
            return IDENTITY
        return _fit(*_track(prev, gray, points))

    def step_both(self, gray: np.ndarray, static_mask: np.ndarray) -> tuple[MotionStep, MotionStep]:
        """Two fits of the motion since the previous frame: (background, whole frame).

        gray: (h, w) uint8; static_mask: (h, w) uint8, 255 on the background. The background
        fit is step(gray, static_mask); the whole-frame one is step(gray), person included.
        Both sets of features are tracked in one optical-flow pass."""
        prev, self._prev = self._prev, gray
        if prev is None:
            return IDENTITY, IDENTITY
        background, whole = _features(prev, static_mask), _features(prev, None)
        if background is None or whole is None:
            return IDENTITY, IDENTITY
        n = len(background)
        src, dst, keep = _track(prev, gray, np.concatenate([background, whole]), with_keep=True)
        first = np.flatnonzero(keep) < n
        return _fit(src[first], dst[first]), _fit(src[~first], dst[~first])


def _fit(src: np.ndarray, dst: np.ndarray) -> MotionStep:
    """Similarity fit (RANSAC) of tracked points src -> dst, each (K, 2) float32."""
    if len(src) < MIN_INLIERS:
        return IDENTITY
    affine, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                  ransacReprojThreshold=RANSAC_PX, maxIters=500)
    count = int(inliers.sum()) if inliers is not None else 0
    if affine is None or count < MIN_INLIERS:
        return IDENTITY
    used = inliers.ravel().astype(bool)
    error = src[used] @ affine[:, :2].T + affine[:, 2] - dst[used]
    return MotionStep(np.vstack([affine, [0.0, 0.0, 1.0]]), count, float(np.sqrt(np.mean(np.sum(error ** 2, axis=1)))))


def _features(gray: np.ndarray, static_mask: np.ndarray | None) -> np.ndarray | None:
    """Corners (N, 1, 2) float32 to track, preferring the static (background) area."""
    spacing = max(4, min(gray.shape) // 40)
    if static_mask is not None:
        points = cv2.goodFeaturesToTrack(gray, MAX_FEATURES, 0.01, spacing, mask=static_mask)
        if points is not None and len(points) >= MIN_FEATURES:
            return points
    return cv2.goodFeaturesToTrack(gray, MAX_FEATURES, 0.01, spacing)


def _track(prev: np.ndarray, gray: np.ndarray, points: np.ndarray, with_keep: bool = False):
    """Track points (N, 1, 2) float32 prev -> gray and back; keep those that return within FB_PX.

    Returns (src, dst), each (K, 2) float32, and with_keep the (N,) bool mask of kept points.
    """
    params = dict(winSize=(21, 21), maxLevel=3,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
    moved, ok, _ = cv2.calcOpticalFlowPyrLK(prev, gray, points, None, **params)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray, prev, moved, None, **params)
    error = np.linalg.norm((back - points).reshape(-1, 2), axis=1)
    keep = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (error < FB_PX)
    if with_keep:
        return points.reshape(-1, 2)[keep], moved.reshape(-1, 2)[keep], keep
    return points.reshape(-1, 2)[keep], moved.reshape(-1, 2)[keep]
