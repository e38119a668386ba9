"""The image motion of a planted foot, measured on the shoe itself.

Pose keypoints find the foot and its contacts, but they are only a few px exact: they report
part of a slow slide, add a drift of their own, and see a landing a frame or more late. Here
corners of the shoe, picked inside a box around the foot in a contact's first frame, are
followed into other frames with pyramidal Lucas-Kanade (seeded by the last frame's shift) and
checked forward-backward. Corners nearer the other foot's keypoints are left out. The shoe's
shift is the mean shift of a group of corners that move together: the group nearest the
keypoints' own motion, so a textured floor (which stays still) cannot pass for the shoe. A
planted foot slides; it hardly turns, so the motion is a translation. A frame where too few
corners agree is lost; the caller falls back to keypoints when a contact loses too many.
`touchdown` follows the same corners backwards from a contact's first frame to find the
frames where the shoe had already landed.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecast.video.contacts import foot_centre

MAX_CORNERS = 60  # corners picked on the foot in the reference frame
CORNER_QUALITY = 0.01  # share of the strongest corner response a corner needs
CORNER_SPACING = 3  # px: least distance between two corners
WINDOW = (15, 15)  # px: Lucas-Kanade window
LEVELS = 3  # pyramid levels above the full resolution
FB_MAX_PX = 0.5  # px: forward-backward error above which a corner is dropped
AGREE_PX = 1.5  # px: corners whose shifts differ by less than this move together
MIN_CORNERS = 6  # corners that must agree for a frame to count as tracked
SEARCH_FEET = 2.0  # foot lengths of margin around the keypoints searched for the shoe
SHOE_TOP = 0.25  # foot lengths above the highest foot keypoint where the corner box starts
SAME_LOOK = 0.9  # least normalised correlation of the shoe box with the reference's


class ShoeTracker:
    """Corners of one shoe picked in a reference frame, found again in other frames.

    region: x0, y0, x1, y1 px of the frames searched (all work happens in this crop);
    box: x0, y0, x1, y1 px, the foot in the reference frame, where corners are picked;
    own, other: (3, 2) px keypoints of this foot and the other one in the reference frame:
    corners nearer the other foot's keypoints than this one's are not used.
    """

    def __init__(self, reference: np.ndarray, region: tuple[int, int, int, int], box: tuple[int, int, int, int],
                 own: np.ndarray, other: np.ndarray | None = None):
        self.region = region
        self.ref_gray = self._gray(reference)
        rx0, ry0 = region[:2]
        self.box = (box[0] - rx0, box[1] - ry0, box[2] - rx0, box[3] - ry0)
        corners = _corners(self.ref_gray, self.box)
        if corners is not None and other is not None:
            corners = corners[_nearer(corners + (rx0, ry0), own, other)]
        self.corners = corners if corners is not None and len(corners) >= MIN_CORNERS else None

    def shift(self, frame: np.ndarray, guess: np.ndarray, seed: np.ndarray) -> np.ndarray:
        """(2,) float64 px the shoe moved from the reference to `frame` (H, W, 3) uint8; NaN
        when lost. guess (2,) px: the keypoints' shift (NaN: unknown); seed (2,) px: where
        the search starts."""
        if self.corners is None:
            return np.full(2, np.nan)
        moved = _follow(self.ref_gray, self._gray(frame), self.corners, seed)
        group = _agreeing(moved - self.corners, guess)
        return np.full(2, np.nan) if group is None else (moved[group] - self.corners[group]).mean(axis=0)

    def looks_same(self, frame: np.ndarray, shift: np.ndarray) -> bool:
        """Whether the reference's foot box, moved by shift (2,) px, shows the same shoe in
        `frame` (H, W, 3) uint8 (normalised correlation >= SAME_LOOK)."""
        x0, y0, x1, y1 = self.box
        size, centre = (x1 - x0, y1 - y0), ((x0 + x1 - 1) / 2 + shift[0], (y0 + y1 - 1) / 2 + shift[1])
        now = cv2.getRectSubPix(self._gray(frame), size, centre).astype(np.float32)
        then = self.ref_gray[y0:y1, x0:x1].astype(np.float32)
        a, b = now - now.mean(), then - then.mean()
        return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-6)) >= SAME_LOOK

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.region
        return cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)


def shoe_tracker(reference: np.ndarray, keypoints: np.ndarray, foot: float, pad: float,
                 other: np.ndarray | None = None) -> ShoeTracker | None:
    """A ShoeTracker for the foot at keypoints[0] in `reference` (H, W, 3) uint8, searching
    around all keypoints (n, 3, 2) px; foot: foot length px; pad: margin of the box the
    corners are picked in, in foot lengths; other: (3, 2) px the other foot in `reference`.
    None when the keypoints give no box."""
    region = crop_box(keypoints, foot, SEARCH_FEET + pad, reference.shape)
    box = crop_box(keypoints[:1], foot, pad, reference.shape)
    if region is None or box is None:
        return None
    top = np.nanmin(keypoints[0, :, 1]) - SHOE_TOP * foot  # the shoe, not the leg above the ankle
    box = (box[0], max(box[1], int(np.floor(top))), box[2], box[3])
    return ShoeTracker(reference, region, box, keypoints[0], other)


def track_contact(frames: np.ndarray, keypoints: np.ndarray, foot: float, pad: float,
                  other: np.ndarray | None = None) -> np.ndarray | None:
    """How far the shoe has moved since the contact's first frame, in each frame of the contact.

    frames: (n, H, W, 3) uint8 BGR, the contact's frames; keypoints: (n, 3, 2) px of the foot
    (smoothed; NaN where missing); foot: foot length px; pad: margin of the box around the
    first frame's keypoints the corners are picked in, in foot lengths; other: (n, 3, 2) px the
    other foot (its corners are left out), or None. Returns (n, 2) float64 px (0 at t = 0;
    NaN where lost), or None when the first frame has too few corners on the foot.
    """
    tracker = shoe_tracker(frames[0], keypoints, foot, pad, None if other is None else other[0])
    if tracker is None or tracker.corners is None:
        return None
    guess = foot_centre(keypoints) - foot_centre(keypoints[:1])
    shift = np.full((len(frames), 2), np.nan)
    shift[0] = 0.0
    for t in range(1, len(frames)):
        seed = shift[:t][np.isfinite(shift[:t, 0])][-1]  # the last frame tracked
        shift[t] = tracker.shift(frames[t], guess[t], seed)
    return shift


def touchdown(frames: np.ndarray, keypoints: np.ndarray, foot: float, pad: float, step_px: float,
              other: np.ndarray | None = None) -> int:
    """How many frames before a contact the shoe already stood: frames (k + 1, H, W, 3) uint8,
    the contact's first frame last; keypoints (k + 1, 3, 2) px alike (other: the other foot's,
    or None). Counting back from the contact, a frame counts while the shoe is found in it,
    looks the same, and moved less than step_px px to the next frame."""
    tracker = shoe_tracker(frames[-1], keypoints[::-1], foot, pad, None if other is None else other[-1])
    if tracker is None or tracker.corners is None:
        return 0
    guess = foot_centre(keypoints) - foot_centre(keypoints[-1:])
    last = np.zeros(2)
    for back in range(1, len(frames)):
        frame = frames[-1 - back]
        hint = guess[-1 - back] if np.isfinite(guess[-1 - back]).all() else last
        shift = tracker.shift(frame, hint, last)
        if not (np.isfinite(shift).all() and np.linalg.norm(shift - last) < step_px
                and tracker.looks_same(frame, shift)):
            return back - 1
        last = shift
    return len(frames) - 1


def crop_box(points: np.ndarray, foot: float, margin: float, shape) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 px: the finite points (..., 2) px grown by `margin` x `foot` px on each
    side, clipped to a frame of `shape` (H, W, ...); None when nothing finite or too small."""
    flat = points.reshape(-1, 2)
    finite = flat[np.isfinite(flat).all(axis=1)]
    if not len(finite):
        return None
    h, w = shape[:2]
    m = margin * foot
    x0, y0 = np.floor(finite.min(axis=0) - m).astype(int)
    x1, y1 = np.ceil(finite.max(axis=0) + m).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def _corners(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """(K, 2) float32 px corners of `gray` (h, w) uint8 inside box x0, y0, x1, y1; None if too few."""
    mask = np.zeros_like(gray)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    found = cv2.goodFeaturesToTrack(gray, MAX_CORNERS, CORNER_QUALITY, CORNER_SPACING, mask=mask)
    return None if found is None or len(found) < MIN_CORNERS else found.reshape(-1, 2).astype(np.float32)


def _nearer(corners: np.ndarray, own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(K,) bool: corners (K, 2) px at least as near a finite keypoint of `own` (3, 2) px as
    one of `other` (3, 2) px (all True when either foot has none)."""
    own, other = own[np.isfinite(own).all(axis=1)], other[np.isfinite(other).all(axis=1)]
    if not len(own) or not len(other):
        return np.ones(len(corners), bool)
    def dist(points):
        return np.linalg.norm(corners[:, None] - points[None], axis=2).min(axis=1)
    return dist(own) <= dist(other)


def _follow(ref_gray: np.ndarray, gray: np.ndarray, ref: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Where corners ref (K, 2) px of ref_gray are in gray, starting from ref + seed (2,) px;
    (K, 2) float32, NaN for corners lost or failing the forward-backward check."""
    start = (ref + seed.astype(np.float32)).reshape(-1, 1, 2)
    lk = dict(winSize=WINDOW, maxLevel=LEVELS, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    ahead, ok1, _ = cv2.calcOpticalFlowPyrLK(ref_gray, gray, ref.reshape(-1, 1, 2), start.copy(), **lk)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(gray, ref_gray, ahead, ref.reshape(-1, 1, 2).copy(), **lk)
    ahead, back = ahead.reshape(-1, 2), back.reshape(-1, 2)
    good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (np.linalg.norm(back - ref, axis=1) < FB_MAX_PX)
    return np.where(good[:, None], ahead, np.nan)


def _agreeing(shift: np.ndarray, guess: np.ndarray) -> np.ndarray | None:
    """(K,) bool: a group of corners moving together (shifts (K, 2) px within AGREE_PX of one
    corner's), the one whose mean shift is nearest the keypoints' shift `guess` (2,) px (the
    largest when guess is NaN); None when no group has MIN_CORNERS."""
    ok = np.isfinite(shift).all(axis=1)
    if ok.sum() < MIN_CORNERS:
        return None
    s = np.where(ok[:, None], shift, 1e9)
    near = (np.linalg.norm(s[:, None] - s[None], axis=2) < AGREE_PX) & ok[None] & ok[:, None]
    support = near.sum(axis=1)
    seeds = np.nonzero(support >= MIN_CORNERS)[0]
    if not len(seeds):
        return None
    if not np.isfinite(guess).all():
        return near[seeds[np.argmax(support[seeds])]]
    centres = np.array([s[near[i]].mean(axis=0) for i in seeds])
    off = np.linalg.norm(centres - guess, axis=1)
    return near[seeds[np.argmin(off - 1e-3 * support[seeds])]]  # ties: the larger group
