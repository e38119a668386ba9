"""Displacement fields of a face, in face units: jaw and lips, eyelids, head sway.

Every function takes sample coordinates a, b (face units, any shape) and returns the
backward displacement (da, db) at them: the output pixel at (a, b) shows the source
pixel at (a - da, b - db).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.lipsync.classic.rig import EyeRig, FaceRig
from facecast.face.inner_mouth import UPPER_LIP_SHARE
from facecast.face.warp import smoothstep

MAX_GAP = 0.24  # face units: inner-lip opening at open == 1
CLOSE_OVERSHOOT = 0.35  # relative: extra closing of an open source mouth
WIDTH_GAIN = 0.10  # relative mouth-width change at width == +-1
ROUND_GAIN = 0.16  # relative narrowing at round == 1
JAW_BLEND = 0.30  # face units below the lower lip over which lip motion becomes jaw motion
LASH_LINE = 0.008  # face units: the closed lid's edge softness at the lower lid
LID_RIGID = 0.2  # share of the moved lid, above its margin, that slides without stretching (lashes)
NECK_FADE = 0.18  # face units below the chin over which the jaw motion fades out


@dataclass(frozen=True)
class MouthShape:
    """Mouth parameters of one frame: open 0..1, width -1..1 (negative = narrow), round 0..1."""

    open: float
    width: float
    round: float

    @property
    def scale(self) -> float:
        """Horizontal scale change of the lips (0 = unchanged)."""
        return WIDTH_GAIN * self.width - ROUND_GAIN * self.round


def target_gap(rig: FaceRig, shape: MouthShape, a_src: np.ndarray) -> np.ndarray:
    """Wanted inner-lip opening b(a) at source columns a_src (face units)."""
    half = rig.mouth_half_width * (1.0 + shape.scale)
    x = (a_src - rig.mouth_center_a) / max(half, 1e-3)
    profile = np.clip(1.0 - x * x, 0.0, 1.0) ** 0.4
    return MAX_GAP * shape.open * profile


def source_gap(rig: FaceRig, a_src: np.ndarray) -> np.ndarray:
    """Inner-lip opening of the source at columns a_src. The mesh's inner contour of an
    open mouth sits on the lip's inner tissue, so an open source counts as a little more
    open than measured (CLOSE_OVERSHOOT): closing it then tucks that tissue away."""
    inside = np.abs(a_src - rig.mouth_center_a) < rig.mouth_half_width
    gap = np.where(inside, np.maximum(rig.lip_lower(a_src) - rig.lip_upper(a_src), 0.0), 0.0)
    return gap * (1.0 + CLOSE_OVERSHOOT * smoothstep(gap / 0.05))


def lip_shifts(rig: FaceRig, shape: MouthShape, a_src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical motion (upper, lower) of the inner lip edges at source columns a_src."""
    delta = target_gap(rig, shape, a_src) - source_gap(rig, a_src)
    return -UPPER_LIP_SHARE * delta, (1.0 - UPPER_LIP_SHARE) * delta


def mouth_field(rig: FaceRig, shape: MouthShape, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jaw drop, lip opening and lip width as a backward displacement at (a, b)."""
    ac, wm = rig.mouth_center_a, rig.mouth_half_width
    reach = np.exp(-(b / 0.25) ** 2) * (1.0 - smoothstep((np.abs(a - ac) - wm) / wm))
    da = shape.scale * (a - ac) * reach
    a_src = a - da
    du, dl = lip_shifts(rig, shape, a_src)
    bu, bl = rig.lip_upper(a_src), rig.lip_lower(a_src)
    split = 0.5 * (bu + du + bl + dl)
    upper = du * smoothstep((b - rig.nose_b) / np.maximum(bu + du - rig.nose_b, 1e-3))
    jaw = float(lip_shifts(rig, shape, np.array([ac]))[1][0])
    half = float(rig.jaw_half_width(np.array([0.6 * rig.chin_b]))[0])
    across = smoothstep((half - np.abs(a - ac)) / max(0.6 * half, 1e-3))
    t = smoothstep((b - (bl + dl)) / JAW_BLEND)
    fade = max(NECK_FADE, 2.5 * abs(jaw))  # long enough that a rising chin never folds the neck
    lower = (dl * (1.0 - t) + jaw * across * t) * (1.0 - smoothstep((b - rig.chin_b - max(jaw, 0.0)) / fade))
    db = np.where(b < split, upper, lower)
    return da, db


def inner_lip_contours(rig: FaceRig, shape: MouthShape, samples: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Output inner-lip edges after the mouth motion: (upper, lower), each (samples, 2) face units."""
    ac, wm = rig.mouth_center_a, rig.mouth_half_width
    a_src = np.linspace(ac - wm, ac + wm, samples)
    du, dl = lip_shifts(rig, shape, a_src)
    a_out = ac + (a_src - ac) * (1.0 + shape.scale)
    upper = np.stack([a_out, rig.lip_upper(a_src) + du], axis=1)
    lower = np.stack([a_out, rig.lip_lower(a_src) + dl], axis=1)
    return upper, lower


def blink_field(eye: EyeRig, amount: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Upper lid sliding down over the eye by `amount` (0 open .. 1 closed): db at (a, b).

    a, b: face units, any shape; returns db of the same shape, face units. The lid's skin
    between eye.brow_b and the lid margin stretches over the output span from eye.brow_b
    down to the moved margin (upper + amount * gap), so the backward map b -> b - db stays
    monotonic (it never folds, whatever the eye's size in pixels): its slope is at least
    1 - 1.5 / (1 - LID_RIGID) * gap / (upper - brow_b + gap), > 0 as the rig keeps
    upper - brow_b >= gap."""
    gap = eye.gap(a)
    upper, lower = eye.upper(a), eye.lower(a)
    shift = amount * gap
    margin = upper + shift  # where the lid margin ends up
    above = smoothstep((b - eye.brow_b) / np.maximum((1.0 - LID_RIGID) * (margin - eye.brow_b), 1e-3))
    below = 1.0 - smoothstep((b - lower) / LASH_LINE)  # the lid stops at the lower lash line
    weight = np.where(b < margin, above, np.where(b <= lower, 1.0, below))
    return shift * weight


def head_weight(rig: FaceRig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Soft ellipse over the head: 1 inside, fading to 0 at its rim."""
    ra, rb = rig.head_radii
    r = np.sqrt(((a - rig.head_center[0]) / ra) ** 2 + ((b - rig.head_center[1]) / rb) ** 2)
    return 1.0 - smoothstep((r - 0.7) / 0.3)


def sway_field(rig: FaceRig, roll_deg: float, shift: tuple[float, float],
               a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Head roll about the neck plus a small shift, faded out at the head's rim: (da, db).

    weight: head_weight(rig, a, b) when the caller keeps it (it depends on the rig alone)."""
    pivot_a, pivot_b = rig.mouth_center_a, rig.chin_b + 0.6
    theta = np.deg2rad(roll_deg)
    c, s = np.cos(theta), np.sin(theta)
    qa, qb = a - pivot_a - shift[0], b - pivot_b - shift[1]
    src_a = c * qa + s * qb + pivot_a
    src_b = -s * qa + c * qb + pivot_b
    w = head_weight(rig, a, b) if weight is None else weight
    return (a - src_a) * w, (b - src_b) * w


def sway_forward(rig: FaceRig, roll_deg: float, shift: tuple[float, float], ab: np.ndarray) -> np.ndarray:
    """Where points (N, 2) face units move under the sway (forward map)."""
    pivot = np.array([rig.mouth_center_a, rig.chin_b + 0.6])
    theta = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ab - pivot) @ rot.T + pivot + np.asarray(shift)
    w = head_weight(rig, ab[:, 0], ab[:, 1])[:, None]
    return ab + (moved - ab) * w
