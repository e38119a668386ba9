"""Rigid head motion between two face meshes: a 3D similarity fit and Euler angles.

Coordinates are mediapipe's: x right, y down (pixels), z away from the camera (pixels,
scaled like x). Angles in degrees: yaw > 0 turns the face toward image-left, pitch > 0
tilts it down, roll > 0 turns it clockwise on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame

N_MESH = 468  # mesh points without the iris points
LIMITS_DEG = np.array([40.0, 30.0, 35.0])  # |yaw|, |pitch|, |roll| are clamped here
BROW_LOWER = np.array([46, 53, 52, 65, 55, 276, 283, 282, 295, 285])  # lower edge of both brows


@dataclass(frozen=True)
class Similarity:
    """target ≈ scale * rotation @ (source - source_center) + target_center.

    rotation: (3, 3) float64 proper rotation; scale: > 0; centers: (3,) float64 px.
    """

    rotation: np.ndarray
    scale: float
    source_center: np.ndarray
    target_center: np.ndarray

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 3) source-space points to target space."""
        return self.scale * (pts - self.source_center) @ self.rotation.T + self.target_center

    def invert(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 3) target-space points back to source space."""
        return (pts - self.target_center) @ self.rotation / self.scale + self.source_center


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Least-squares similarity (Umeyama 1991) taking `source` to `target`, both (N, 3) float px."""
    src, dst = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, sing, vt = np.linalg.svd(cov)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ flip @ vt
    var = (xs ** 2).sum() / len(src)
    scale = float((sing * np.diag(flip)).sum() / max(var, 1e-12))
    return Similarity(rotation, max(scale, 1e-6), mu_s, mu_d)


def euler_deg(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation = Rz(roll) Ry(yaw) Rx(pitch) -> (3,) float64 [yaw, pitch, roll] degrees."""
    r = rotation
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.rad2deg(np.array([yaw, pitch, roll]))


def rotation_from_euler(angles_deg: np.ndarray) -> np.ndarray:
    """(3,) [yaw, pitch, roll] degrees -> (3, 3) float64 rotation Rz(roll) Ry(yaw) Rx(pitch)."""
    y, p, r = np.deg2rad(np.asarray(angles_deg, np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def clamp_angles(angles_deg: np.ndarray) -> np.ndarray:
    """Clamp [yaw, pitch, roll] degrees to LIMITS_DEG (beyond them a 2D warp tears)."""
    return np.clip(angles_deg, -LIMITS_DEG, LIMITS_DEG)


@lru_cache(maxsize=1)
def _moving_parts() -> np.ndarray:
    """Indices of eyelid and brow points: they move with expressions, not with the skull."""
    lids = np.concatenate([topo.EYE_L_UPPER[1:-1], topo.EYE_L_LOWER[1:-1],
                           topo.EYE_R_UPPER[1:-1], topo.EYE_R_LOWER[1:-1]])
    return np.unique(np.concatenate([lids, topo.BROW_L, topo.BROW_R, BROW_LOWER]))



def skull_indices(landmarks: np.ndarray) -> np.ndarray:
    """Mesh points that move rigidly with the head: above the nose bottom, no lids or brows.

    landmarks: (478, 2+) px of a face at rest -> (K,) int indices into the 468 mesh points.
    """
    face = FaceFrame.from_landmarks(landmarks).to_face(landmarks[:N_MESH, :2])
    nose_b = face[topo.NOSE_BOTTOM, 1]
    keep = np.flatnonzero(face[:, 1] < nose_b)
    return np.setdiff1d(keep, _moving_parts())
