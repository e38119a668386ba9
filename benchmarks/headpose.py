"""Head pose of a face from dlib's 68 landmarks: cv2.solvePnP against a generic 3D face.

Benchmark-only. The reference face below is a generic adult face in millimetres, written from
typical anthropometric proportions (outer eye corners about 90 mm apart, inner ones 32 mm, nose
tip 30 mm in front of the inner eye corners, mouth 50 mm wide). Only points that move with the
skull are used: eye corners, the nose ridge, tip and nostrils, and the mouth corners. The jaw
outline (a silhouette that slides as the head turns), the chin (it drops as the mouth opens),
the brows and the lids are left out. Camera: pinhole, focal length = image width, principal
point at the image centre, no distortion. Each frame is solved on its own (no smoothing, no
initial guess from the previous frame).

Axes of the reference face, like the camera's: x toward image-right (the subject's left),
y down, z away from the camera. Yaw > 0: the face turns toward image-left (its nose tip moves left).
"""

from __future__ import annotations

import cv2
import numpy as np

# dlib index -> (x, y, z) mm; origin between the inner eye corners.
REFERENCE_MM = {
    27: (0.0, 0.0, -10.0),    # top of the nose ridge, between the eyes
    28: (0.0, 11.0, -16.0),   # nose ridge
    29: (0.0, 22.0, -22.0),
    30: (0.0, 34.0, -30.0),   # nose tip
    31: (-13.0, 40.0, -10.0),  # nostril wing, image-left
    32: (-7.0, 42.0, -15.0),
    33: (0.0, 43.0, -18.0),   # below the nose tip
    34: (7.0, 42.0, -15.0),
    35: (13.0, 40.0, -10.0),  # nostril wing, image-right
    36: (-45.0, -2.0, 12.0),  # outer eye corner, image-left
    39: (-16.0, 0.0, 0.0),    # inner eye corner, image-left
    42: (16.0, 0.0, 0.0),     # inner eye corner, image-right
    45: (45.0, -2.0, 12.0),   # outer eye corner, image-right
    48: (-25.0, 64.0, -5.0),  # mouth corner, image-left
    54: (25.0, 64.0, -5.0),   # mouth corner, image-right
}
RIGID = np.array(sorted(REFERENCE_MM))
MODEL = np.array([REFERENCE_MM[i] for i in RIGID], np.float64)  # (15, 3) mm


def head_angles(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(3,) float64 [yaw, pitch, roll] degrees of a face with dlib landmarks `points` (68, 2) px
    in an image `width` x `height` px; NaNs when solvePnP fails.

    The rotation R (reference face -> camera) is split as Rz(roll) Ry(yaw) Rx(pitch).
    """
    camera = np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])
    image = np.ascontiguousarray(points[RIGID], np.float64)
    ok, rvec, _ = cv2.solvePnP(MODEL, image, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return np.full(3, np.nan)
    r, _ = cv2.Rodrigues(rvec)
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.rad2deg(np.array([yaw, pitch, roll]))
