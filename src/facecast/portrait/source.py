"""Which avatar a live session or an offline animation uses: an id, a file, or the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecast.avatar.model import Avatar
from facecast.config import PrepareSettings

LIVE_MAX_SIDE = 512  # px: live sessions render at most this long a side


@dataclass(frozen=True)
class StillAvatar:
    """One avatar frame to animate. frame: (H, W, 3) uint8 BGR; mesh: (478, 3) float32 px."""

    id: str
    name: str
    frame: np.ndarray
    mesh: np.ndarray


def load_avatar(ref: str | Path | None = None, settings: PrepareSettings = PrepareSettings()) -> Avatar:
    """An avatar by cache id, by image/video file (prepared on first use with `settings`), or the demo
    astronaut when `ref` is None or empty (facecast.avatar.resolve). Raises NotFound for an unknown id."""
    from facecast.avatar.prepare import prepare

    if ref is None or str(ref) == "":
        from facecast.demo import demo_portrait

        return prepare(demo_portrait(), settings)
    from facecast.avatar.resolve import resolve_avatar

    return resolve_avatar(ref, settings)


def still_of(avatar: Avatar, max_side: int | None = None) -> StillAvatar:
    """The avatar's first frame and mesh, shrunk so its long side is at most `max_side` px
    (even sizes, for the video encoder)."""
    frame = np.asarray(avatar.frames[0])
    mesh = avatar.landmarks[0].astype(np.float32)
    h, w = frame.shape[:2]
    scale = 1.0 if max_side is None else min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(2, int(round(w * scale)) // 2 * 2), max(2, int(round(h * scale)) // 2 * 2))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        mesh = mesh * np.float32(size[0] / w)
    return StillAvatar(avatar.id, avatar.name, np.ascontiguousarray(frame), mesh)
