"""Driver motion: head pose and expression of each driver frame, relative to a reference.

The reference is the driver's neutral frame (relative mode: the first frame with a face,
or the frame the user marks) or the avatar's own mesh (absolute mode). Pose and
expression are filtered with One-Euro filters so the avatar neither jitters nor lags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame
from facecast.errors import InvalidArgument
from facecast.portrait.filters import OneEuroFilter
from facecast.portrait.pose import N_MESH, clamp_angles, euler_deg, fit_similarity, skull_indices

MODES = ("relative", "absolute")
EYE_PAIRS = ((topo.EYE_L_UPPER[1:-1], topo.EYE_L_LOWER[1:-1], topo.EYE_L_CORNERS),
             (topo.EYE_R_UPPER[1:-1], topo.EYE_R_LOWER[1:-1], topo.EYE_R_CORNERS))
EYE_RATIO_MAX = 1.3  # an eye opens at most this much wider than in the reference
BLINK_NEUTRAL = 0.6  # a neutral eye less open than this share of a later frame's was mid-blink
CLOSED_EYE = 0.25  # the face mesh's lids never meet: this openness ratio already is a closed eye
INNER_LIPS = (topo.LIPS_INNER_UPPER[1:-1], topo.LIPS_INNER_LOWER[1:-1])  # paired inner-lip points
CLOSED_GAP = 0.02  # face units: a mean inner-lip opening below this is a closed mouth
TRUSTED_FIT = 0.06  # face units: RMS misfit of the skull points above which a mesh is not trusted
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
    from_closed: the lower-face offsets start from a closed mouth (relative mode), so they
        apply to the avatar's mouth closed, not to its mouth as photographed
    """

    angles: np.ndarray
    shift: np.ndarray
    scale: float
    offsets: np.ndarray
    eyes: np.ndarray
    reference: np.ndarray = field(repr=False)
    from_closed: bool = False

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


def lip_gap(mesh: np.ndarray, reference: np.ndarray) -> float:
    """Mean inner-lip opening (px) of `mesh` (468+, 2+) along the face's down axis of `reference`."""
    down = FaceFrame.from_landmarks(reference).y_axis
    upper, lower = INNER_LIPS
    return float(((mesh[lower, :2] - mesh[upper, :2]) @ down).mean())


def closed_estimate(mesh: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`mesh` (468, 3) px with its mouth closed by estimate: each inner lower-lip point moves
    onto its upper partner, and the lower lip, chin and jaw under the mouth rise by the
    opening at the mouth centre, fading out toward the sides of the jaw."""
    face = FaceFrame.from_landmarks(reference)
    ab = face.to_face(mesh[:, :2])
    upper, lower = INNER_LIPS
    down = np.append(face.y_axis, 0.0)
    centre_gap = float(np.median((mesh[lower] - mesh[upper]) @ down))
    half = abs(ab[topo.MOUTH_CORNERS[1], 0] - ab[topo.MOUTH_CORNERS[0], 0]) / 2
    across = np.clip(2.0 - np.abs(ab[:, 0] - ab[lower, 0].mean()) / max(half, 1e-6), 0.0, 1.0)
    below = ab[:, 1] >= ab[lower, 1].min() - 1e-6
    out = mesh.copy()
    out[below] -= np.outer(across[below] * max(centre_gap, 0.0), down)
    out[lower] = mesh[upper]
    return out


def lower_face_indices(landmarks: np.ndarray) -> np.ndarray:
    """Mesh points below the nose bottom (lips, cheeks, jaw) of a (478, 2+) px mesh: (M,) int."""
    b = FaceFrame.from_landmarks(landmarks).to_face(landmarks[:N_MESH, :2])[:, 1]
    return np.flatnonzero(b > b[topo.NOSE_BOTTOM])


class DriverTracker:
    """Turns the driver's face mesh, frame by frame, into filtered DriverMotion.

    mode: "relative" (changes since the neutral frame) or "absolute" (the avatar takes the
    driver's head orientation and expression as they are; needs `target`, the avatar's
    (478, 3) px mesh). Translation and scale are relative to the neutral frame in both.

    In relative mode the mouth and jaw are measured from the most closed mouth seen since the
    neutral frame (a speaker is often caught mid-word), and the eyes from the neutral frame
    unless it caught a blink.
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
        self._mouth: np.ndarray | None = None  # lower-face point indices
        self._closed: tuple[float, np.ndarray] | None = None  # (lip gap, lower-face points) most closed
        self._open_eyes: np.ndarray | None = None  # (2,) eye openness the ratios are taken against

    def reset(self) -> None:
        """Take the next frame with a face as the new neutral frame; forget the filters' past."""
        self.neutral, self._skull, self._mouth, self._closed, self._open_eyes = None, None, None, None, None
        self._pose_filter.reset()
        self._expr_filter.reset()

    def update(self, landmarks: np.ndarray, t_s: float) -> DriverMotion:
        """Motion of the driver mesh `landmarks` (478, 3) px seen at time `t_s` seconds."""
        if self.neutral is None:
            self.neutral = np.asarray(landmarks, np.float64).copy()
            self._skull = skull_indices(self.neutral)
            self._mouth = lower_face_indices(self.neutral)
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
        offsets = aligned - reference[:N_MESH]
        eyes = eye_openness(aligned)
        if self.mode == "relative":
            misfit = np.sqrt(((aligned[skull] - reference[skull]) ** 2).sum(1).mean()) / eye_distance(reference)
            trusted = misfit < TRUSTED_FIT  # a garbled mesh must not become a reference
            offsets[self._mouth] = aligned[self._mouth] - self._closed_mouth(aligned, reference, trusted)
            eyes = eyes / self._eye_reference(eyes, trusted)
        else:
            eyes = eyes / np.maximum(eye_openness(reference), 1e-3)
        eyes = (eyes - CLOSED_EYE) / (1.0 - CLOSED_EYE)
        return DriverMotion(angles=euler_deg(to_ref.rotation), shift=shift, scale=from_neutral.scale,
                            offsets=offsets, eyes=eyes, reference=reference, from_closed=self.mode == "relative")

    def _closed_mouth(self, aligned: np.ndarray, reference: np.ndarray, trusted: bool) -> np.ndarray:
        """Lower-face points (M, 3) of the most closed mouth seen so far (reference px); while
        only an open mouth was seen, the first one closed by estimate (closed_estimate)."""
        gap = lip_gap(aligned, reference)
        if self._closed is None:
            closed_gap = CLOSED_GAP * eye_distance(reference)
            self._closed = (gap, aligned[self._mouth].copy()) if gap < closed_gap else \
                (closed_gap, closed_estimate(aligned, reference)[self._mouth])
        elif gap < self._closed[0] and trusted:
            self._closed = (gap, aligned[self._mouth].copy())
        return self._closed[1]

    def _eye_reference(self, openness: np.ndarray, trusted: bool) -> np.ndarray:
        """(2,) openness of open eyes: the neutral frame's, unless it caught a blink."""
        if self._open_eyes is None:
            self._open_eyes = openness.copy()
        blinked = (self._open_eyes < BLINK_NEUTRAL * openness) & trusted
        self._open_eyes[blinked] = openness[blinked]
        return np.maximum(self._open_eyes, 1e-3)

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
                            eyes=np.clip(vec[6:8], 0.0, EYE_RATIO_MAX), reference=raw.reference,
                            from_closed=raw.from_closed)
