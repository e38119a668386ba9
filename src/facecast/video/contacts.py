"""Foot contacts: when a foot is planted on the ground.

A foot is in contact when it is slow (speed thresholds with hysteresis: a contact starts
below `speed_on` and lasts until `speed_off`) and low (within `height` of the ground line).
Short gaps between contacts are bridged and very short contacts dropped, so contacts do
not flicker. Lengths are in body scale units (the hip-to-ankle leg length), so the
thresholds hold at any resolution and distance from the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.errors import InvalidArgument


@dataclass(frozen=True)
class ContactSettings:
    """speed_on / speed_off: leg lengths per second; height: leg lengths above the ground
    line; bridge: longest gap (frames) filled between two contacts; min_frames: shortest contact kept."""

    speed_on: float = 0.25
    speed_off: float = 0.5
    height: float = 0.08
    bridge: int = 5
    min_frames: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.speed_on <= self.speed_off:
            raise InvalidArgument(f"contact speeds on={self.speed_on!r}, off={self.speed_off!r}: need 0 < on <= off")
        if self.height <= 0:
            raise InvalidArgument(f"contact height={self.height!r} must be positive")


def foot_centre(points: np.ndarray) -> np.ndarray:
    """(F, 3, 2) keypoints of one foot -> (F, 2) mean of the visible ones (NaN when none)."""
    finite = np.isfinite(points).all(axis=2)
    total = np.where(finite[..., None], points, 0.0).sum(axis=1)
    count = finite.sum(axis=1)[:, None]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def foot_speed(points: np.ndarray, fps: float, scale: float) -> np.ndarray:
    """(F, 3, 2) px -> (F,) speed in scale units per second (central differences; inf when unknown)."""
    c = foot_centre(points)
    if len(c) < 2:
        return np.full(len(c), np.inf)
    step = np.gradient(c, axis=0)
    speed = np.linalg.norm(step, axis=1) * fps / scale
    return np.where(np.isfinite(speed), speed, np.inf)


def ground_line(points: np.ndarray) -> float:
    """y (px) of the ground: the 90th percentile of the lowest foot keypoint, both feet.
    points: (F, 2, 3, 2) px. NaN when no foot is seen."""
    lowest = np.nanmax(np.where(np.isfinite(points[..., 1]), points[..., 1], -np.inf), axis=2).ravel()
    lowest = lowest[np.isfinite(lowest)]
    return float(np.percentile(lowest, 90)) if len(lowest) else float("nan")


def detect_contacts(points: np.ndarray, *, fps: float, scale: float, ground: float,
                    settings: ContactSettings = ContactSettings()) -> np.ndarray:
    """Contact frames of one foot: points (F, 3, 2) px -> (F,) bool."""
    speed = foot_speed(points, fps, scale)
    low = np.nanmax(np.where(np.isfinite(points[..., 1]), points[..., 1], -np.inf), axis=1)
    height = (ground - low) / scale
    raw = _hysteresis(speed, height, settings)
    return _drop_short(_bridge(raw, settings.bridge), settings.min_frames)


def _hysteresis(speed: np.ndarray, height: np.ndarray, s: ContactSettings) -> np.ndarray:
    out = np.zeros(len(speed), bool)
    on = False
    for t, (v, h) in enumerate(zip(speed, height)):
        grounded = h <= s.height
        on = grounded and (v < s.speed_off if on else v < s.speed_on)
        out[t] = on
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True in a (F,) bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


def _bridge(mask: np.ndarray, gap: int) -> np.ndarray:
    out = mask.copy()
    spans = runs(mask)
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        if start - stop <= gap:
            out[stop:start] = True
    return out


def _drop_short(mask: np.ndarray, min_frames: int) -> np.ndarray:
    out = mask.copy()
    for start, stop in runs(mask):
        if stop - start < min_frames:
            out[start:stop] = False
    return out
