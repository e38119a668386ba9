"""A face rig: the geometry of one avatar frame that the warps need, in face units.

Built once per source frame from its mesh (cheap: a few hundred points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame
from facecast.avatar.masks import lower_face_polygon


@dataclass(frozen=True)
class Curve:
    """A curve b(a) in face units, sampled at increasing a. a, b: (K,) float64."""

    a: np.ndarray
    b: np.ndarray

    @classmethod
    def through(cls, ab: np.ndarray) -> "Curve":
        order = np.argsort(ab[:, 0])
        return cls(ab[order, 0], ab[order, 1])

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return np.interp(a, self.a, self.b)


@dataclass(frozen=True)
class EyeRig:
    """One eye: lid curves in face units; `gap(a)` is the open height of the eye."""

    upper: Curve
    lower: Curve
    a_range: tuple[float, float]
    brow_b: float  # face units: where the lid motion fades out above the eye

    def gap(self, a: np.ndarray) -> np.ndarray:
        inside = (a > self.a_range[0]) & (a < self.a_range[1])
        return np.where(inside, np.maximum(self.lower(a) - self.upper(a), 0.0), 0.0)


@dataclass(frozen=True)
class FaceRig:
    """Geometry of one avatar frame.

    frame: the face-aligned coordinate frame (unit = outer eye-corner distance)
    lip_upper / lip_lower: inner lip contours b(a)
    mouth_half_width: half the inner-corner distance, face units
    nose_b, chin_b: b of the nose bottom and the chin
    jaw_half_width: half-width of the face at a given b (from the face oval)
    lower_face: (P, 2) px polygon of the region the mouth warp may change
    head_box: (4,) px x0, y0, x1, y1 of the region the idle sway may change (unclipped)
    eyes: the two eyes (image-left, image-right)
    """

    frame: FaceFrame
    lip_upper: Curve
    lip_lower: Curve
    mouth_center_a: float
    mouth_half_width: float
    nose_b: float
    chin_b: float
    jaw_half_width: Curve
    lower_face: np.ndarray
    head_center: np.ndarray
    head_radii: np.ndarray
    eyes: tuple[EyeRig, EyeRig]

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, lower_face: np.ndarray | None = None) -> "FaceRig":
        """landmarks: (478, 2+) float pixel coordinates; lower_face: (P, 2) px polygon
        (the avatar's cached one), computed from the landmarks when None."""
        ff = FaceFrame.from_landmarks(landmarks)
        face = ff.to_face(landmarks[:, :2])
        upper, lower = face[topo.LIPS_INNER_UPPER], face[topo.LIPS_INNER_LOWER]
        corners = face[[topo.LIPS_INNER_UPPER[0], topo.LIPS_INNER_UPPER[-1]]]
        oval = face[topo.FACE_OVAL]
        box_min, box_max = face[:468].min(0), face[:468].max(0)
        return cls(
            frame=ff,
            lip_upper=Curve.through(upper),
            lip_lower=Curve.through(lower),
            mouth_center_a=float(corners[:, 0].mean()),
            mouth_half_width=float(abs(corners[1, 0] - corners[0, 0]) / 2),
            nose_b=float(face[topo.NOSE_BOTTOM, 1]),
            chin_b=float(face[topo.CHIN, 1]),
            jaw_half_width=_half_width_curve(oval),
            lower_face=lower_face_polygon(landmarks) if lower_face is None else lower_face,
            head_center=np.array([(box_min[0] + box_max[0]) / 2, box_min[1] + 0.42 * (box_max[1] - box_min[1])]),
            head_radii=np.array([0.75 * (box_max[0] - box_min[0]), 0.78 * (box_max[1] - box_min[1])]),
            eyes=(_eye(face, topo.EYE_L_UPPER, topo.EYE_L_LOWER, topo.BROW_L),
                  _eye(face, topo.EYE_R_UPPER, topo.EYE_R_LOWER, topo.BROW_R)),
        )

    @property
    def source_gap(self) -> float:
        """Inner-lip opening at the mouth centre in the source, face units (>= 0)."""
        a = np.array([self.mouth_center_a])
        return float(max(0.0, (self.lip_lower(a) - self.lip_upper(a))[0]))

    def head_box(self) -> np.ndarray:
        """(4,) float px bounding box of the head ellipse (in image coordinates)."""
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * self.head_radii + self.head_center
        px = self.frame.to_image(corners)
        return np.concatenate([px.min(0), px.max(0)])


def _half_width_curve(oval: np.ndarray) -> Curve:
    """Half-width of the face oval as a function of b (face units): Curve over b."""
    bs = np.linspace(oval[:, 1].min(), oval[:, 1].max(), 24)
    widths = []
    n = len(oval)
    for b in bs:
        xs = []
        for i in range(n):
            p, q = oval[i], oval[(i + 1) % n]
            if (p[1] - b) * (q[1] - b) <= 0 and p[1] != q[1]:
                t = (b - p[1]) / (q[1] - p[1])
                xs.append(p[0] + t * (q[0] - p[0]))
        widths.append((max(xs) - min(xs)) / 2 if len(xs) >= 2 else 0.0)
    return Curve(bs, np.asarray(widths))


def _eye(face: np.ndarray, upper_idx, lower_idx, brow_idx) -> EyeRig:
    upper, lower = face[upper_idx], face[lower_idx]
    # The lid motion fades out at the brow, or higher where the eye is tall for its lid, so
    # that the stretched lid (fields.blink_field) keeps at least its open height above it.
    gap = float(np.max(np.interp(upper[:, 0], *_sorted(lower)) - upper[:, 1]))
    brow_b = min(float(face[brow_idx, 1].mean()), float(upper[:, 1].min()) - max(gap, 0.0))
    return EyeRig(Curve.through(upper), Curve.through(lower),
                  (float(upper[:, 0].min()), float(upper[:, 0].max())), brow_b)


def _sorted(ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) points -> (a, b) sorted by a, for np.interp."""
    order = np.argsort(ab[:, 0])
    return ab[order, 0], ab[order, 1]
