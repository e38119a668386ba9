"""Stabilisation: smooth the camera path with a moving average, warp each frame onto the
smooth path, and undo it later (re-shake) so the output keeps the original camera motion.

Deliberate motion survives: the moving average keeps pans and zooms, and the ends of the
path are padded by a straight line fitted to them, so a pan is not bent at the ends.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import convolve1d

from facecast.compose import blend, feathered_mask
from facecast.errors import InvalidArgument
from facecast.video.defaults import DEFAULT_WINDOW  # noqa: F401 (re-exported)
from facecast.video.transforms import CameraPath, params_of, similarity



def moving_average(path: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of (F, D) float64 along F over `window` frames; ends padded by
    a fitted line. An even window is centred by giving its two end taps half weight."""
    if window < 1:
        raise InvalidArgument(f"window={window!r} must be at least 1 frame")
    if window == 1 or len(path) < 2:
        return path.copy()
    kernel = np.ones(window + 1 - window % 2)
    if window % 2 == 0:
        kernel[[0, -1]] = 0.5
    kernel /= window
    half = len(kernel) // 2
    padded = np.concatenate([_extend(path, half, at_end=False), path, _extend(path, half, at_end=True)])
    return convolve1d(padded, kernel, axis=0)[half: half + len(path)]


def _extend(path: np.ndarray, count: int, *, at_end: bool) -> np.ndarray:
    """`count` samples continuing (F, D) `path` past its start or end along a least-squares line."""
    fit_n = max(2, min(len(path), count + 1))
    t = np.arange(fit_n, dtype=np.float64)
    part = path[-fit_n:] if at_end else path[:fit_n]
    slope, intercept = np.polyfit(t, part, 1)
    ahead = fit_n - 1 + np.arange(1, count + 1) if at_end else -np.arange(count, 0, -1)
    return ahead[:, None] * slope[None] + intercept[None]


def camera_path(steps: np.ndarray, size: tuple[int, int], fps: float, window: int = DEFAULT_WINDOW) -> CameraPath:
    """Accumulate per-frame motion into a camera path, smooth it, derive stabilising warps.

    steps: (F, 3, 3) float64 motion previous -> this frame in px of frames of `size` (w, h).
    """
    center = (size[0] / 2.0, size[1] / 2.0)
    poses = np.empty_like(steps)
    pose = np.eye(3)
    for i, step in enumerate(steps):
        pose = step @ pose if i else np.eye(3)
        poses[i] = pose
    camera = np.array([params_of(p, center) for p in poses])
    camera[:, 2] = np.unwrap(camera[:, 2])
    smoothed = moving_average(camera, window)
    warps = np.array([similarity(q, center) @ np.linalg.inv(p) for q, p in zip(smoothed, poses)])
    return CameraPath(camera, smoothed, warps, tuple(size), fps, window)


def stabilize_frame(frame: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Warp (H, W, 3) uint8 by a (3, 3) stabilising warp; the uncovered border is mirrored."""
    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, warp[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def reshake_frame(frame: np.ndarray, warp: np.ndarray, original: np.ndarray | None = None,
                  region: np.ndarray | None = None, feather_px: float = 12.0) -> np.ndarray:
    """Put a stabilised frame back on the original camera path.

    frame: (H, W, 3) uint8 in stabilised px; warp: (3, 3) the frame's stabilising warp.
    With `original` (H, W, 3) uint8 and `region` (4, 2) float px (a polygon in stabilised px
    around what was generated), only that region is warped back and pasted, feathered, into
    the original frame; everything else keeps its original pixels. Without them the whole
    frame is warped back.
    """
    h, w = frame.shape[:2]
    inverse = np.linalg.inv(warp)
    if original is None or region is None:
        return cv2.warpAffine(frame, inverse[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    polygon = cv2.perspectiveTransform(region.reshape(-1, 1, 2).astype(np.float64), inverse).reshape(-1, 2)
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 1, (w, h))
    out = np.array(original, copy=True)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out
    to_roi = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ inverse
    back = cv2.warpAffine(frame, to_roi[:2], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
    mask = feathered_mask(polygon - (x0, y0), (y1 - y0, x1 - x0), feather_px)[..., None]
    roi = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = blend(roi, back, mask)
    return out
