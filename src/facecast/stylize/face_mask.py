"""The face region stylisation protects: the face-mesh oval, feathered outwards."""

from __future__ import annotations

import cv2
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame

FEATHER = 0.25  # face-scale units (eye-corner distance): width of the soft band outside the oval


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], feather: float = FEATHER) -> np.ndarray:
    """Weight of the face at every pixel.

    landmarks: (478, 2+) float32 face mesh in px; shape: (H, W) of the picture.
    Returns (H, W) float32 in [0, 1]: exactly 1 inside the face oval (FACE_OVAL), falling smoothly
    (smoothstep of the distance) to 0 at `feather` face-scale units outside it.
    """
    h, w = shape
    inside = np.zeros((h, w), np.uint8)
    oval = np.round(landmarks[topo.FACE_OVAL, :2]).astype(np.int32)
    cv2.fillPoly(inside, [cv2.convexHull(oval)], 1)
    width = max(feather * FaceFrame.from_landmarks(landmarks).scale, 1.0)  # px
    outside = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)  # px to the oval, 0 inside
    t = np.clip(1.0 - outside / width, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
