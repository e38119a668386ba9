"""Retargeting: move the avatar's 3D face mesh by the driver's motion.

The avatar's mesh takes the driver's expression offsets (mouth, jaw, brows; eyes by their
openness), is rotated about its centre by the driver's head rotation (the driver's yaw, pitch
and roll add to the avatar's own), scaled and shifted, and projected orthographically. A ring
around the face moves rigidly with the head, a ring further out and the border of the warp box
stay still, so the background never moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame
from facecast.portrait.driver import CLOSED_GAP, EYE_PAIRS, DriverMotion, closed_estimate, lip_gap
from facecast.portrait.pose import (BROW_LOWER, N_MESH, Similarity, euler_deg, fit_similarity,
                                    rotation_from_euler, skull_indices)
from facecast.face.warp import GRID_STEP, smoothstep

HEAD_RING = 0.28  # face units beyond the face oval: ring that moves with the head (hair, ears)
STILL_RING = 0.75  # face units beyond the face oval: ring that stays (background)
LOWER_LID_SHARE = 0.15  # share of a blink taken by the lower lid
BORDER_ANCHORS = 6  # still points per side of the warp box
# Rings of mesh points above each upper lid, outer to inner corner like the lid itself: the lid
# skin and lashes just above the lid margin, then the crease. A blink moves them by these
# shares of the margin's motion, so the lid slides down instead of stretching the lashes.
UPPER_LID_RINGS = ((np.array([247, 30, 29, 27, 28, 56, 190]), np.array([113, 225, 224, 223, 222, 221, 189])),
                   (np.array([467, 260, 259, 257, 258, 286, 414]), np.array([342, 445, 444, 443, 442, 441, 413])))
RING_SHARES = (0.7, 0.3)
LIP_PAIRS = np.stack([topo.LIPS_INNER_UPPER[1:-1], topo.LIPS_INNER_LOWER[1:-1]], axis=1)  # (9, 2)


@dataclass(frozen=True)
class Rings:
    """Points around the face: `head` (K, 3) px move rigidly with it, `still` (M, 2) px stay."""

    head: np.ndarray
    still: np.ndarray


def expression_weights(mesh: np.ndarray, face: FaceFrame) -> np.ndarray:
    """(468,) in [0, 1]: how much each mesh point follows the driver's expression offsets.

    Lower face (lips, cheeks, jaw) and brows follow; the rest of the face is rigid. The lids
    are moved by the eye openness instead. mesh: (478, 2+) px.
    """
    b = face.to_face(mesh[:N_MESH, :2])[:, 1]
    tip, bottom = b[topo.NOSE_TIP], b[topo.NOSE_BOTTOM]
    w = smoothstep((b - tip) / max(bottom - tip + 0.05, 1e-3))
    w[np.concatenate([topo.BROW_L, topo.BROW_R, BROW_LOWER])] = 1.0
    for upper, lower, _ in EYE_PAIRS:
        w[upper] = 0.0
        w[lower] = 0.0
    return w


def face_rings(mesh: np.ndarray, face: FaceFrame) -> Rings:
    """Rings around the face oval of `mesh` (478, 3) px, in pixels.

    The head ring covers only the oval above the mouth (below it the jaw moves on its own).
    """
    oval = face.to_face(mesh[topo.FACE_OVAL, :2])
    center = face.to_face(mesh[:N_MESH, :2]).mean(0)
    out = oval - center
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
    above = oval[:, 1] < 0.0  # b < 0: above the mouth (the face frame's origin)
    head_ab = oval[above] + HEAD_RING * out[above]
    head_z = mesh[topo.FACE_OVAL[above], 2]
    head = np.concatenate([face.to_image(head_ab), head_z[:, None]], axis=1)
    still = face.to_image(oval + STILL_RING * out)
    return Rings(head, still)


def box_anchors(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """(4 * BORDER_ANCHORS, 2) px still points on the border of a box, a grid step outside it."""
    x0, y0, x1, y1 = x0 - GRID_STEP, y0 - GRID_STEP, x1 + GRID_STEP, y1 + GRID_STEP
    t = np.linspace(0.0, 1.0, BORDER_ANCHORS, endpoint=False)
    top = np.stack([x0 + t * (x1 - x0), np.full_like(t, y0)], 1)
    right = np.stack([np.full_like(t, x1), y0 + t * (y1 - y0)], 1)
    bottom = np.stack([x1 - t * (x1 - x0), np.full_like(t, y1)], 1)
    left = np.stack([np.full_like(t, x0), y1 - t * (y1 - y0)], 1)
    return np.concatenate([top, right, bottom, left])


class Retargeter:
    """Moves one avatar frame's mesh (478, 3) px by DriverMotion."""

    def __init__(self, mesh: np.ndarray):
        self.mesh = np.asarray(mesh, np.float64)
        self.face = FaceFrame.from_landmarks(self.mesh)
        self.skull = skull_indices(self.mesh)
        self.pivot = self.mesh[self.skull].mean(0)
        self.weights = expression_weights(self.mesh, self.face)
        self.rings = face_rings(self.mesh, self.face)
        # (id, (Similarity, its Euler angles), the reference kept alive so its id stays unique)
        self._to_avatar: tuple | None = None
        self.closed = self.mesh[:N_MESH]
        if lip_gap(self.mesh, self.mesh) > CLOSED_GAP * self.face.scale:  # photographed mid-word
            self.closed = closed_estimate(self.mesh[:N_MESH], self.mesh)

    def expression(self, motion: DriverMotion) -> np.ndarray:
        """The avatar mesh (468, 3) px with the driver's expression, before head motion.

        Offsets measured from the driver's closed mouth apply to the avatar's mouth closed."""
        offsets = motion.offsets @ self._reference_map(motion.reference).T
        base = self.closed if motion.from_closed else self.mesh[:N_MESH]
        moved = base + self.weights[:, None] * offsets
        self._move_lids(moved, motion.eyes)
        self._keep_lips_apart(moved, base)
        return moved

    def head_motion(self, pts: np.ndarray, motion: DriverMotion) -> np.ndarray:
        """Rotate (N, 3) px points about the head centre, scale and shift them: (N, 3) px.

        The driver's yaw, pitch and roll since its reference pose add to the avatar's own
        angles (its pose relative to the driver's reference, taken as the avatar's pose: a
        driver's neutral pose faces the camera). So a turn of the driver by 5 degrees turns a
        tilted or turned portrait by 5 degrees too; rotating it about the camera's axes instead
        would leak a nod into yaw on a tilted head."""
        rot = self._head_rotation(motion.angles, motion.reference)
        shift = np.array([motion.shift[0], motion.shift[1], 0.0]) * self.face.scale
        return motion.scale * (pts - self.pivot) @ rot.T + self.pivot + shift

    def _head_rotation(self, angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """(3, 3) rotation (camera axes) that takes the avatar from its own pose to that pose's
        Euler angles plus `angles` (3,) degrees yaw, pitch, roll."""
        fit, own_angles = self._reference_fit(reference)
        return rotation_from_euler(own_angles + angles) @ fit.rotation.T

    def _reference_map(self, reference: np.ndarray) -> np.ndarray:
        """(3, 3) linear map of reference-mesh offsets into avatar pixels."""
        fit = self._reference_fit(reference)[0]
        return fit.scale * fit.rotation

    def _reference_fit(self, reference: np.ndarray) -> tuple[Similarity, np.ndarray]:
        """Similarity from the driver's reference mesh (478, 3) px to the avatar's and its
        rotation's (3,) Euler angles, degrees (cached per reference)."""
        if self._to_avatar is None or self._to_avatar[0] != id(reference):
            fit = fit_similarity(reference[self.skull], self.mesh[self.skull])
            self._to_avatar = (id(reference), (fit, euler_deg(fit.rotation)), reference)
        return self._to_avatar[1]

    def _move_lids(self, pts: np.ndarray, eyes: np.ndarray) -> None:
        """Close or widen each eye in place: the upper lid (and the skin above it, partly)
        moves toward the lower lid, which rises a little."""
        for (upper, lower, _), rings, ratio in zip(EYE_PAIRS, UPPER_LID_RINGS, eyes):
            gap = pts[upper] - pts[lower]
            closing = max(0.0, 1.0 - float(ratio))
            pts[lower] += LOWER_LID_SHARE * closing * gap
            moved = pts[lower] + float(ratio) * (gap - LOWER_LID_SHARE * closing * gap)
            delta = moved - pts[upper]
            pts[upper] = moved
            for ring, share in zip(rings, RING_SHARES):
                pts[ring] += share * delta

    def _keep_lips_apart(self, pts: np.ndarray, base: np.ndarray) -> None:
        """Where the lower inner lip rose above the upper one further than in `base` (468, 3) px,
        both move apart symmetrically to that limit (in place)."""
        down = np.append(self.face.y_axis, 0.0)
        rest = (base[LIP_PAIRS[:, 1]] - base[LIP_PAIRS[:, 0]]) @ down
        gap = (pts[LIP_PAIRS[:, 1]] - pts[LIP_PAIRS[:, 0]]) @ down
        short = np.minimum(rest, 0.0) - gap  # > 0 where the lips crossed too far
        fix = short > 0
        if fix.any():
            push = 0.5 * short[fix, None] * down
            pts[LIP_PAIRS[fix, 0]] -= push
            pts[LIP_PAIRS[fix, 1]] += push
