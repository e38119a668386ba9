"""Driver frame in, animated avatar frame out: face mesh -> driver motion -> render."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from facecast.portrait.driver import DriverMotion, DriverTracker, FilterSettings
from facecast.portrait.renderer import PortraitRenderer
from facecast.portrait.source import StillAvatar

DRIVER_MAX_SIDE = 640  # px: larger driver frames are shrunk before the face mesh


@dataclass
class Animated:
    """One output frame.

    image: (H, W, 3) uint8 BGR avatar frame
    face_found: whether the driver frame showed a face (else the last motion is held)
    motion: the motion rendered (None: the avatar at rest)
    times_ms: stage -> milliseconds ("landmarks", "warp")
    """

    image: np.ndarray
    face_found: bool
    motion: DriverMotion | None
    times_ms: dict = field(default_factory=dict)


class PortraitAnimator:
    """Animates one avatar from one driver's frames. Not thread-safe: one per session thread.

    mode: "relative" (default) or "absolute"; step: px between warp-field samples (None: by
    the size of the face, see PortraitRenderer).
    """

    def __init__(self, avatar: StillAvatar, mode: str = "relative",
                 filters: FilterSettings = FilterSettings(), step: int | None = None):
        from facecast.portrait.tracking import FaceTracker  # mediapipe loads only when needed

        self.avatar = avatar
        self.renderer = PortraitRenderer(avatar.frame, avatar.mesh, step=step)
        self.tracker = DriverTracker(mode, avatar.mesh.astype(np.float64), filters)
        self._faces = FaceTracker(min_confidence=0.5)
        self._last: DriverMotion | None = None

    def reset(self) -> None:
        """Take the driver's next face as the neutral frame; the avatar returns to rest."""
        self.tracker.reset()
        self._faces.reset()
        self._last = None

    def close(self) -> None:
        self._faces.close()

    def __enter__(self) -> "PortraitAnimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def animate(self, driver: np.ndarray, t_s: float) -> Animated:
        """driver: (h, w, 3) uint8 BGR frame taken at `t_s` seconds -> the avatar frame."""
        start = time.perf_counter()
        mesh = self._faces.landmarks(shrink(driver, DRIVER_MAX_SIDE))
        found = mesh is not None
        if found:
            self._last = self.tracker.update(mesh, t_s)
        mid = time.perf_counter()
        image = self.renderer.render(self._last)
        end = time.perf_counter()
        return Animated(image, found, self._last,
                        {"landmarks": (mid - start) * 1e3, "warp": (end - mid) * 1e3})


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    """`frame` (h, w, 3) scaled down (area filter) so its long side is at most `max_side` px."""
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return frame
    return cv2.resize(frame, (max(1, int(round(w * scale))), max(1, int(round(h * scale)))),
                      interpolation=cv2.INTER_AREA)
