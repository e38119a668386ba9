"""Face mesh of consecutive driver frames that follows the face from frame to frame.

A webcam face is often small in its frame, where the face mesh misses it and each frame would
cost a detection and a second mesh pass. Once a face is found, the next frame is searched in a
square crop around it, scaled to at most CROP_MAX_SIDE px: one mesh pass, of a face that fills
its input. Crops and whole frames go to two separate face-mesh graphs: each graph tracks
its face from its previous input, which must be framed alike.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecast.avatar.landmarks import FaceMesher, box_of
from facecast.compose import safe_crop

CROP_SCALE = 2.2  # crop side / the face box's longer side
CROP_MAX_SIDE = 384  # px: larger crops are shrunk before the face mesh


class FaceTracker:
    """Face mesh of a driver's frames in order. Not thread-safe: one per session thread."""

    def __init__(self, min_confidence: float = 0.5):
        self._whole = FaceMesher(static=False, min_confidence=min_confidence)
        self._crops = FaceMesher(static=False, min_confidence=min_confidence)
        self._box: np.ndarray | None = None

    def close(self) -> None:
        self._whole.close()
        self._crops.close()

    def reset(self) -> None:
        """Forget where the face was (the next frame is searched whole)."""
        self._box = None

    def landmarks(self, frame: np.ndarray) -> np.ndarray | None:
        """frame: (H, W, 3) uint8 BGR -> (478, 3) float32 px mesh of its face, or None."""
        pts = self._near(frame, self._box) if self._box is not None else None
        if pts is None:
            pts = self._whole.landmarks(frame)
        self._box = None if pts is None else box_of(pts)
        return pts

    def _near(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The mesh searched in a square crop around `box` (4,) px, in frame pixels."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(8, int(round(CROP_SCALE * max(box[2] - box[0], box[3] - box[1]))))
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        crop = safe_crop(frame, x0, y0, side, side)
        scale = min(1.0, CROP_MAX_SIDE / side)
        if scale < 1.0:
            crop = cv2.resize(crop, (int(round(side * scale)),) * 2, interpolation=cv2.INTER_AREA)
        pts = self._crops.landmarks(crop)
        if pts is None:
            return None
        pts = pts / np.float32(scale)
        pts[:, 0] += x0
        pts[:, 1] += y0
        return pts
