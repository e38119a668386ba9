"""Lower-face and mouth regions of a face mesh, as polygons in pixel coordinates."""

from __future__ import annotations

import cv2
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame

JAW_REACH = 0.65  # face-scale units: how far below the chin the lower-face region reaches


def lower_face_polygon(landmarks: np.ndarray) -> np.ndarray:
    """Region the mouth renderer may change: cheeks below the nose, lips, chin, and the
    space the chin can drop into. landmarks: (478, 2+) px -> (P, 2) float32 convex polygon."""
    ff = FaceFrame.from_landmarks(landmarks)
    oval = ff.to_face(landmarks[topo.FACE_OVAL, :2])
    nose_b = ff.to_face(landmarks[[topo.NOSE_TIP], :2])[0, 1]
    mouth_b = ff.to_face(landmarks[topo.LIPS_INNER_UPPER, :2])[:, 1].mean()
    chin_b = ff.to_face(landmarks[[topo.CHIN], :2])[0, 1]
    lower = oval[oval[:, 1] > nose_b]
    depth = np.clip((lower[:, 1] - mouth_b) / max(chin_b - mouth_b, 1e-3), 0.0, 1.0)
    dropped = lower + np.stack([np.zeros_like(depth), JAW_REACH * depth], axis=1)
    nose_line = np.array([[lower[:, 0].min(), nose_b], [lower[:, 0].max(), nose_b]], np.float32)
    pts = np.concatenate([lower, dropped, nose_line]).astype(np.float32)
    hull = cv2.convexHull(ff.to_image(pts).astype(np.float32))[:, 0]
    return hull.astype(np.float32)


def mouth_polygon(landmarks: np.ndarray, grow: float = 0.06) -> np.ndarray:
    """Outer lip contour grown by `grow` face-scale units. (478, 2+) px -> (20, 2) float32."""
    ff = FaceFrame.from_landmarks(landmarks)
    lips = ff.to_face(landmarks[topo.LIPS_OUTER, :2])
    center = lips.mean(0)
    direction = lips - center
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    grown = lips + direction / np.maximum(norm, 1e-6) * grow
    return ff.to_image(grown).astype(np.float32)


def rasterize(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Hard mask (H, W) bool of a polygon (P, 2) px."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


POLYGON_POINTS = 48  # stored polygons are padded to this many vertices


def frame_masks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower-face and mouth polygons of every frame.

    landmarks: (F, 478, 2+) px -> ((F, POLYGON_POINTS, 2), (F, 20, 2)) float32, each lower-face
    polygon padded by repeating its last vertex (which does not change its area).
    """
    lower = np.stack([_pad(lower_face_polygon(lm), POLYGON_POINTS) for lm in landmarks])
    mouth = np.stack([mouth_polygon(lm) for lm in landmarks])
    return lower.astype(np.float32), mouth.astype(np.float32)


def _pad(polygon: np.ndarray, n: int) -> np.ndarray:
    if len(polygon) >= n:
        return polygon[:n]
    return np.concatenate([polygon, np.repeat(polygon[-1:], n - len(polygon), axis=0)])
