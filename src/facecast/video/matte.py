"""Person mattes from mediapipe's bundled selfie-segmentation model, and their temporal smoothing."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from facecast.avatar.landmarks import mp, quiet_native_stderr  # noqa: E402

PERSON_THRESHOLD = 0.5  # matte value above which a pixel counts as person
_lock = threading.Lock()


class PersonSegmenter:
    """Soft person mattes. model 0: general (256x256), 1: landscape (144x256, faster).

    Not thread-safe: one per thread. Use as a context manager to free the graph.
    """

    def __init__(self, model: int = 0):
        with _lock, quiet_native_stderr():
            self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model)
            self._seg.process(np.zeros((64, 64, 3), np.uint8))  # TFLite prints its set-up lines now, silenced

    def matte(self, frame: np.ndarray) -> np.ndarray:
        """frame: (H, W, 3) uint8 BGR -> (H, W) float32 in [0, 1], 1 = person."""
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        mask = self._seg.process(rgb).segmentation_mask
        return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)

    def close(self) -> None:
        self._seg.close()

    def __enter__(self) -> "PersonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def smooth3(mattes: np.ndarray, how: str = "mean") -> np.ndarray:
    """3-frame temporal smoothing of (n, H, W) float32 mattes: "mean" or "max" of t-1, t, t+1
    (the ends reuse their own frame)."""
    if len(mattes) < 2:
        return mattes.copy()
    prev = np.concatenate([mattes[:1], mattes[:-1]])
    nxt = np.concatenate([mattes[1:], mattes[-1:]])
    if how == "max":
        return np.maximum(np.maximum(prev, mattes), nxt)
    return (prev + mattes + nxt) / 3.0


def grow(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Dilate a (H, W) bool/uint8 mask by `radius_px` (elliptic) -> (H, W) bool."""
    m = mask.astype(np.uint8)
    if radius_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))
        m = cv2.dilate(m, kernel)
    return m > 0
