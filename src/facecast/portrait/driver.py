"""Driver motion: head pose and expression of each driver frame, relative to a reference.

The reference is the driver's neutral frame (relative mode: the first frame with a face,
or the frame the user marks) or the avatar's own mesh (absolute mode). Pose and
expression are filtered with One-Euro filters so the avatar neither jitters nor lags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecast.avatar import topology as topo
from facecast.errors import InvalidArgument
from facecast.portrait.filters import OneEuroFilter
from facecast.portrait.pose import N_MESH, clamp_angles, euler_deg, fit_similarity, skull_indices

MODES = ("relative", "absolute")
EYE_PAIRS = ((topo.EYE_L_UPPER[1:-1], topo.EYE_L_LOWER[1:-1], topo.EYE_L_CORNERS),
             (topo.EYE_R_UPPER[1:-1], topo.EYE_R_LOWER[1:-1], topo.EYE_R_CORNERS))
EYE_RATIO_MAX = 1.3  # an eye opens at most this much wider than in the reference
SHIFT_MAX = 0.35  # face units: largest head translation passed on
SCALE_RANGE = (0.8, 1.25)  # head size change passed on


@dataclass(frozen=True)
class FilterSettings:
    """One-Euro settings. Pose vector: yaw, pitch, roll (deg), shift a, b (face units),
    log scale, eye ratios (2); expression offsets in face units."""

    pose_min_cutoff_hz: tuple = (2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0)
    pose_beta: tuple = (0.5, 0.5, 0.5, 2.0, 2.0, 2.0, 0.5, 0.5)
    expression_min_cutoff_hz: float = 4.0
    expression_beta: float = 20.0


@dataclass(frozen=True)
class DriverMotion:
    """Motion of one driver frame.

    angles: (3,) degrees yaw, pitch, roll of the head relative to the reference
    shift: (2,) head translation since the neutral frame in face units (image x, y)
    scale: head size relative to the neutral frame (1.0 = unchanged)
    offsets: (468, 3) expression displacement of each mesh point, head pose removed, in
        reference pixels
    eyes: (2,) openness relative to the reference (1 = as open, 0 = closed); image-left, image-right
    reference: (478, 3) px, the mesh `angles`, `offsets` and `eyes` are relative to
    """

    angles: np.ndarray
    shift: np.ndarray
    scale: float
    offsets: np.ndarray
    eyes: np.ndarray
    reference: np.ndarray = field(repr=False)

    @property
    def mouth_gap(self) -> float:
        """Change of the inner-lip opening at the mouth centre, in face units (> 0: opens)."""
        up, low = topo.INNER_LIP_CENTER
        ref_scale = eye_distance(self.reference)
        return float((self.offsets[low, 1] - self.offsets[up, 1]) / ref_scale)


def eye_distance(landmarks: np.ndarray) -> float:
    """Distance (px) between the outer eye corners of a (478, 2+) mesh: the face unit."""
    a, b = topo.EYE_OUTER_CORNERS
    return max(float(np.linalg.norm(landmarks[a, :2] - landmarks[b, :2])), 1e-6)


def eye_openness(landmarks: np.ndarray) -> np.ndarray:
    """(2,) mean lid gap of each eye divided by its width, of a (468+, 2+) mesh."""
    out = np.empty(2)
    for i, (upper, lower, corners) in enumerate(EYE_PAIRS):
        gap = np.linalg.norm(landmarks[upper, :2] - landmarks[lower, :2], axis=1).mean()
        width = np.linalg.norm(landmarks[corners[0], :2] - landmarks[corners[1], :2])
        out[i] = gap / max(width, 1e-6)
    return out


class DriverTracker:
    """Turns the driver's face mesh, frame by frame, into filtered DriverMotion.

    mode: "relative" (changes since the neutral frame) or "absolute" (the avatar takes the
    driver's head orientation and expression as they are; needs `target`, the avatar's
    (478, 3) px mesh). Translation and scale are relative to the neutral frame in both.
    """

    def __init__(self, mode: str = "relative", target: np.ndarray | None = None,
                 filters: FilterSettings = FilterSettings()):
        if mode not in MODES:
            raise InvalidArgument(f"mode={mode!r}: expected one of {', '.join(MODES)}")
        if mode == "absolute" and target is None:
            raise InvalidArgument("mode='absolute' needs the avatar mesh as `target`")
        self.mode, self.target, self.settings = mode, target, filters
        self._pose_filter = OneEuroFilter(np.array(filters.pose_min_cutoff_hz), np.array(filters.pose_beta))
        self._expr_filter = OneEuroFilter(filters.expression_min_cutoff_hz, filters.expression_beta)
        self.neutral: np.ndarray | None = None
        self._skull: np.ndarray | None = None

    def reset(self) -> None:
        """Take the next frame with a face as the new neutral frame; forget the filters' past."""
        self.neutral, self._skull = None, None
        self._pose_filter.reset()
        self._expr_filter.reset()

    def update(self, landmarks: np.ndarray, t_s: float) -> DriverMotion:
        """Motion of the driver mesh `landmarks` (478, 3) px seen at time `t_s` seconds."""
        if self.neutral is None:
            self.neutral = np.asarray(landmarks, np.float64).copy()
            self._skull = skull_indices(self.neutral)
        raw = self._measure(np.asarray(landmarks, np.float64))
        return self._filtered(raw, t_s)

    def _measure(self, mesh: np.ndarray) -> DriverMotion:
        """Unfiltered motion of `mesh` (478, 3) px."""
        skull = self._skull
        reference = self.neutral if self.mode == "relative" else self.target
        to_ref = fit_similarity(reference[skull], mesh[skull])
        aligned = to_ref.invert(mesh[:N_MESH])
        from_neutral = to_ref if self.mode == "relative" else fit_similarity(self.neutral[skull], mesh[skull])
        shift = (from_neutral.target_center - from_neutral.source_center)[:2] / eye_distance(self.neutral)
        eyes = eye_openness(aligned) / np.maximum(eye_openness(reference), 1e-3)
        return DriverMotion(angles=euler_deg(to_ref.rotation), shift=shift, scale=from_neutral.scale,
                            offsets=aligned - reference[:N_MESH], eyes=eyes, reference=reference)

    def _filtered(self, raw: DriverMotion, t_s: float) -> DriverMotion:
        """Apply the One-Euro filters and the safe ranges."""
        vec = np.concatenate([raw.angles, raw.shift, [np.log(raw.scale)], raw.eyes])
        vec = self._pose_filter(vec, t_s)
        unit = eye_distance(raw.reference)
        offsets = self._expr_filter(raw.offsets / unit, t_s) * unit
        shift = vec[3:5]
        norm = np.linalg.norm(shift)
        if norm > SHIFT_MAX:
            shift = shift * (SHIFT_MAX / norm)
        return DriverMotion(angles=clamp_angles(vec[:3]), shift=shift,
                            scale=float(np.clip(np.exp(vec[5]), *SCALE_RANGE)), offsets=offsets,
                            eyes=np.clip(vec[6:8], 0.0, EYE_RATIO_MAX), reference=raw.reference)
