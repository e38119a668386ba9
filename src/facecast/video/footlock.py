"""Foot locking: pin planted feet where they stand.

Pose keypoints find the feet and their contacts (contacts.py). Within a contact the slide is
measured on the shoe itself in the image (foot_tracking.py: Lucas-Kanade on corners of the
shoe, checked forward-backward), because keypoints are only a few px exact; the touch-down
is moved back over the frames (at most `bridge`) where the shoe already stood, since pose sees
a landing late. Each contact frame is then shifted by the opposite of the shoe's motion since
the contact's first frame: a planted foot stays where it landed, and the release at lift-off
is hidden by the swing that follows. Where the shoe cannot be followed (too few corners agree
in more than half a contact's frames), keypoints decide: they are smoothed over time (tracker
jitter must not become correction jitter), the anchor is their median over the first
ANCHOR_FRAMES frames, and a least-squares similarity maps them onto it. The correction warps
the frame inside a feathered box around the foot and is blended 70/30 with the original frame
(so 30% of the sliding foot stays visible as a faint ghost; blend=1.0 removes it). Frames
outside contacts are untouched.

Across segments: a contact can span a segment cut, so the next segment (which restarts on the
run-in frames the previous one also saw) would re-anchor it where the foot stands in the
run-in, already slid. `lock_feet` therefore takes `carried`, the offsets the previous
segment applied to each foot in those frames, and shifts such a contact's targets so that, at
its first carried frame, it moves the foot exactly as the previous segment did: the anchor
is carried over the cut and both versions of the cross-faded frames agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.signal import savgol_filter

from facecast.compose import blend
from facecast.errors import InvalidArgument
from facecast.video.contacts import ContactSettings, detect_contacts, ground_line, runs
from facecast.video.foot_tracking import crop_box, touchdown, track_contact
from facecast.video.temporal import edge_taper

MIN_FOOT_PX = 12.0  # px: smallest foot length used for the correction box
ANCHOR_FRAMES = 3  # frames at a contact's start whose median is the anchor
SMOOTH_FRAMES = 11  # frames: window of the keypoint smoothing inside a contact (odd)
MAX_TURN = 0.2  # rad: a correction turning more than this is not trusted (translation only)
MAX_ZOOM = 0.1  # a correction scaling by more than this share is not trusted
MIN_TRACKED = 0.5  # share of a contact's frames the shoe must be followed in, else keypoints


@dataclass(frozen=True)
class FootlockSettings:
    """blend: share of the corrected frame in the foot box (0.7 = 70/30 with the original);
    pad: box margin around the foot keypoints, in foot lengths; image: measure the slide on
    the shoe in the image (foot_tracking.py), False: from the keypoints alone."""

    blend: float = 0.7
    pad: float = 1.0
    image: bool = True
    contacts: ContactSettings = field(default_factory=ContactSettings)

    def __post_init__(self) -> None:
        if not 0.0 <= self.blend <= 1.0:
            raise InvalidArgument(f"foot-lock blend={self.blend!r} must be in [0, 1]")


def smooth_within(points: np.ndarray, contacts: np.ndarray, window: int = SMOOTH_FRAMES) -> np.ndarray:
    """Keypoints (F, 3, 2) px with each contact's stretch smoothed over time (Savitzky-Golay,
    quadratic, `window` frames; it keeps steady drifts exact up to the ends), so tracker jitter
    does not become correction jitter; the rest unchanged."""
    out = points.copy()
    for start, stop in runs(contacts):
        n = min(window, stop - start - (1 - (stop - start) % 2))  # odd, at most the run's length
        part = points[start:stop]
        if n >= 5 and np.isfinite(part).all():
            out[start:stop] = savgol_filter(part, n, 2, axis=0, mode="interp")
    return out


def anchor_targets(points: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """Where each foot should be: (F, 3, 2) px keypoints of one foot, (F,) bool contacts ->
    (F, 3, 2) targets: the touch-down position inside each contact, the keypoints elsewhere."""
    targets = points.copy()
    for start, stop in runs(contacts):
        targets[start:stop] = np.nanmedian(points[start: min(stop, start + ANCHOR_FRAMES)], axis=0)
    return targets


def earlier_touchdowns(frames: np.ndarray, points: np.ndarray, other: np.ndarray, contacts: np.ndarray, *,
                       step_px: float, most: int, pad: float) -> np.ndarray:
    """Contacts (F,) bool of one foot with each start moved back (at most `most` frames) over
    the frames where the shoe in the image already stood: pose sees a landing late. frames
    (F, H, W, 3) uint8; points, other (F, 3, 2) px keypoints of this foot and the other one;
    step_px: the most a shoe still in contact moves from one frame to the next (as when a
    contact ends: speed_off)."""
    out = contacts.copy()
    for start, stop in runs(contacts):
        first = max(0, start - most)
        foot = contact_foot(points[start:stop])
        back = touchdown(frames[first:start + 1], points[first:start + 1], foot, pad, step_px,
                         other[first:start + 1])
        out[start - back:start] = True
    return out


def image_moves(frames: np.ndarray, steady: np.ndarray, other: np.ndarray, contacts: np.ndarray,
                pad: float) -> np.ndarray:
    """The shift (F, 2) px that puts one foot back where it touched down, measured on the shoe
    in the image: frames (F, H, W, 3) uint8, steady (F, 3, 2) px smoothed keypoints, other
    (F, 3, 2) px the other foot's keypoints (corners on it are not used), contacts
    (F,) bool. NaN outside contacts and in contacts whose shoe could not be followed in at least
    MIN_TRACKED of the frames (keypoints decide there); frames lost in between are interpolated."""
    moves = np.full((len(frames), 2), np.nan)
    for start, stop in runs(contacts):
        foot = contact_foot(steady[start:stop])
        shift = track_contact(frames[start:stop], steady[start:stop], foot, pad, other[start:stop])
        ok = np.isfinite(shift).all(axis=1) if shift is not None else np.zeros(stop - start, bool)
        if ok.mean() < MIN_TRACKED:
            continue
        t = np.arange(stop - start)
        shift = np.column_stack([np.interp(t, t[ok], shift[ok, k]) for k in range(2)])
        moves[start:stop] = -shift  # back to where the shoe was in the first contact frame
    return moves


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Least-squares similarity (2, 3) float64 mapping src (K, 2) onto dst (K, 2); rows with
    NaN are ignored; a pure translation for a single point; None without points."""
    ok = np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1)
    s, d = src[ok].astype(np.float64), dst[ok].astype(np.float64)
    if len(s) == 0:
        return None
    ms, md = s.mean(axis=0), d.mean(axis=0)
    if len(s) == 1:
        return np.array([[1.0, 0.0, md[0] - ms[0]], [0.0, 1.0, md[1] - ms[1]]])
    a, b = s - ms, d - md
    denom = (a ** 2).sum()
    p = (a * b).sum() / denom if denom > 0 else 1.0
    q = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum() / denom if denom > 0 else 0.0
    if abs(np.arctan2(q, p)) > MAX_TURN or abs(np.log(max(np.hypot(p, q), 1e-9))) > MAX_ZOOM:
        p, q = 1.0, 0.0  # heel/toe too noisy for a rotation: shift only
    rot = np.array([[p, -q], [q, p]])
    return np.hstack([rot, (md - rot @ ms)[:, None]])


def correct_foot(frame: np.ndarray, src: np.ndarray, dst: np.ndarray, settings: FootlockSettings,
                 foot: float | None = None) -> np.ndarray:
    """Move one foot from its keypoints src (3, 2) onto dst (3, 2) in (H, W, 3) uint8 `frame`
    (in place) and return the frame. foot: foot length px that sizes the box (the contact's,
    so the box does not breathe with one frame's heel and toe); None: this frame's."""
    affine = fit_similarity(src, dst)
    if affine is None or np.abs(affine - np.eye(2, 3)).max() < 1e-3:
        return frame  # nothing to move
    box = crop_box(np.vstack([src, dst]), foot or _foot_length(src), settings.pad, frame.shape)
    if box is None:
        return frame
    x0, y0, x1, y1 = box
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    warped = cv2.warpAffine(frame, _roi_affine(affine, x0, y0), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
    weight = settings.blend * edge_taper((y1 - y0, x1 - x0), 0.2)[..., None]
    frame[y0:y1, x0:x1] = blend(roi, warped, weight)
    return frame


def _roi_affine(affine: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The (2, 3) map from full-frame px to ROI px that applies `affine` (full frame px -> px)."""
    out = affine.copy()
    out[:, 2] -= (x0, y0)
    return out


def _foot_length(points: np.ndarray) -> float:
    """Heel-to-toe distance (px) of (3, 2) keypoints, at least MIN_FOOT_PX."""
    d = np.linalg.norm(points[2] - points[1]) if np.isfinite(points[1:]).all() else np.nan
    return float(max(MIN_FOOT_PX, d if np.isfinite(d) else MIN_FOOT_PX))


def contact_foot(points: np.ndarray) -> float:
    """Foot length (px) through a contact: the median heel-to-toe distance of (n, 3, 2) px
    keypoints, at least MIN_FOOT_PX."""
    lengths = np.linalg.norm(points[:, 2] - points[:, 1], axis=1)
    lengths = lengths[np.isfinite(lengths)]
    return float(max(MIN_FOOT_PX, np.median(lengths))) if len(lengths) else MIN_FOOT_PX


def offsets_of(targets: np.ndarray, steady: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """How far the correction moves one foot in each frame: (F, 2) px, the mean over visible
    keypoints of targets - steady (both (F, 3, 2) px); NaN outside contacts (F,) bool."""
    moved = targets - steady
    visible = np.isfinite(moved).all(axis=2)
    total = np.where(visible[..., None], moved, 0.0).sum(axis=1)
    count = visible.sum(axis=1)[:, None]
    offsets = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    offsets[~contacts] = np.nan
    return offsets


def carry_anchors(targets: np.ndarray, steady: np.ndarray, contacts: np.ndarray,
                  carried: np.ndarray) -> np.ndarray:
    """Targets (F, 3, 2) px of one foot with every contact that the previous segment also
    had in contact (carried (F, 2) px: the offsets it applied, NaN where it had none) shifted
    so that at the first such frame the foot moves by the carried offset: the anchor set
    before the cut is kept. steady: (F, 3, 2) px smoothed keypoints; contacts: (F,) bool."""
    out = targets.copy()
    now = offsets_of(targets, steady, contacts)
    both = np.isfinite(carried).all(axis=1) & np.isfinite(now).all(axis=1)
    for start, stop in runs(contacts):
        shared = np.nonzero(both[start:stop])[0]
        if len(shared):
            s = start + shared[0]
            out[start:stop] += carried[s] - now[s]
    return out


@dataclass(frozen=True)
class LockResult:
    """frames: (F, H, W, 3) uint8; contacts: (F, 2) bool; targets: (F, 2, 3, 2) px, where the
    correction puts the keypoints (the keypoints themselves outside contacts); offsets:
    (F, 2, 2) px, how far each foot is moved (NaN outside contacts), what the next segment
    gets as `carried` for the frames it sees again."""

    frames: np.ndarray
    contacts: np.ndarray
    targets: np.ndarray
    offsets: np.ndarray


def lock_feet(frames: np.ndarray, points: np.ndarray, *, fps: float, scale: float,
              settings: FootlockSettings = FootlockSettings(), carried: np.ndarray | None = None) -> LockResult:
    """Detect contacts on known keypoints and pin the feet.

    frames: (F, H, W, 3) uint8 BGR; points: (F, 2, 3, 2) float px (feet x ankle/heel/toe, NaN
    where missing); scale: body scale in px (leg length); carried: (F, 2, 2) px, the offsets a
    previous segment applied to these frames (LockResult.offsets; NaN where none), so that
    contacts spanning the cut keep their anchors. Returns a LockResult; frames without a
    contact are returned unchanged.
    """
    ground = ground_line(points)
    out = frames.copy()
    contacts = np.zeros(points.shape[:2], bool)
    targets = points.copy()
    offsets = np.full(points.shape[:2] + (2,), np.nan)
    for foot in range(points.shape[1]):
        keep = None if carried is None else carried[:, foot]
        contacts[:, foot], targets[:, foot], offsets[:, foot] = _lock_foot(
            frames, out, points[:, foot], points[:, 1 - foot], ground=ground, fps=fps, scale=scale,
            settings=settings, carried=keep)
    return LockResult(out, contacts, targets, offsets)


def _lock_foot(frames: np.ndarray, out: np.ndarray, points: np.ndarray, other: np.ndarray, *, ground: float,
               fps: float, scale: float, settings: FootlockSettings,
               carried: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pin one foot (keypoints (F, 3, 2) px; other: the other foot's; carried: (F, 2) px
    offsets from the previous segment or None) in `out` (F, H, W, 3) uint8, a copy of frames
    (in place). Returns its contacts (F,) bool, keypoint targets (F, 3, 2) px and offsets
    (F, 2) px."""
    contacts = detect_contacts(points, fps=fps, scale=scale, ground=ground, settings=settings.contacts)
    if settings.image:
        step = settings.contacts.speed_off * scale / fps  # px per frame
        contacts = earlier_touchdowns(frames, points, other, contacts, step_px=step, most=settings.contacts.bridge,
                                      pad=settings.pad)
    steady = smooth_within(points, contacts)
    targets = anchor_targets(steady, contacts)
    if settings.image:
        moves = image_moves(frames, steady, other, contacts, settings.pad)
        seen = np.isfinite(moves).all(axis=1)
        targets[seen] = steady[seen] + moves[seen, None]
    if carried is not None:
        targets = carry_anchors(targets, steady, contacts, carried)
    for start, stop in runs(contacts):
        foot = contact_foot(steady[start:stop])
        for t in range(start, stop):
            correct_foot(out[t], steady[t], targets[t], settings, foot)
    return contacts, targets, offsets_of(targets, steady, contacts)
