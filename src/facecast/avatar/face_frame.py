"""A face-aligned coordinate frame: origin at the mouth, x along the mouth corners, y down
the face, unit = the distance between the outer eye corners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.avatar import topology as topo


@dataclass(frozen=True)
class FaceFrame:
    """origin: (2,) px; x_axis, y_axis: (2,) unit vectors in image coords; scale: px per unit."""

    origin: np.ndarray
    x_axis: np.ndarray
    y_axis: np.ndarray
    scale: float

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> "FaceFrame":
        """landmarks: (478, 2+) pixel coordinates."""
        pts = landmarks[:, :2].astype(np.float64)
        left_eye, right_eye = pts[topo.EYE_OUTER_CORNERS[0]], pts[topo.EYE_OUTER_CORNERS[1]]
        left_mouth, right_mouth = pts[topo.MOUTH_CORNERS[0]], pts[topo.MOUTH_CORNERS[1]]
        across = (right_eye - left_eye) + (right_mouth - left_mouth)
        x_axis = across / max(np.linalg.norm(across), 1e-6)
        y_axis = np.array([-x_axis[1], x_axis[0]])
        if np.dot(pts[topo.CHIN] - pts[topo.FOREHEAD], y_axis) < 0:
            y_axis = -y_axis
        origin = pts[list(topo.INNER_LIP_CENTER)].mean(0)
        scale = max(float(np.linalg.norm(right_eye - left_eye)), 1.0)
        return cls(origin, x_axis, y_axis, scale)

    def to_face(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) pixel coordinates -> (..., 2) face units (a across, b down)."""
        d = (np.asarray(xy, np.float64) - self.origin) / self.scale
        return np.stack([d @ self.x_axis, d @ self.y_axis], axis=-1)

    def to_image(self, ab: np.ndarray) -> np.ndarray:
        """(..., 2) face units -> (..., 2) pixel coordinates."""
        ab = np.asarray(ab, np.float64)
        return self.origin + self.scale * (ab[..., :1] * self.x_axis + ab[..., 1:2] * self.y_axis)

    def displacement_px(self, da: np.ndarray, db: np.ndarray) -> np.ndarray:
        """Displacement fields da, db (h, w) in face units -> (h, w, 2) float32 pixels (x, y)."""
        (xa, xb), (ya, yb) = self.scale * self.x_axis, self.scale * self.y_axis
        out = np.empty(da.shape + (2,), np.float32)
        out[..., 0] = da * xa + db * ya
        out[..., 1] = da * xb + db * yb
        return out
