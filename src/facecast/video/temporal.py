"""Temporal consistency of a generated region: flow-guided blending with the previous output.

The previous output frame is warped onto the current one with dense optical flow (DIS or
Farneback) computed on the region only, then mixed in with a per-pixel weight that drops
to zero where the warped previous frame disagrees with the current frame (fast mouth motion,
occlusions, flow failures), so steady areas lose their flicker and moving ones do not ghost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.compose import blend
from facecast.errors import InvalidArgument

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in px, x1/y1 exclusive


@dataclass(frozen=True)
class TemporalSettings:
    """strength: weight of the warped previous frame where it agrees (0..1; 0.6 lowers
    white flicker to about half); tolerance: disagreement (grey levels, after a small blur)
    at which that weight has fallen to 1/e; margin: the region grows by this fraction of its
    size; flow: "dis" or "farneback"."""

    strength: float = 0.6
    tolerance: float = 10.0
    margin: float = 0.15
    flow: str = "dis"

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise InvalidArgument(f"temporal strength={self.strength!r} must be in [0, 1)")
        if self.tolerance <= 0:
            raise InvalidArgument(f"temporal tolerance={self.tolerance!r} must be positive")
        if self.flow not in ("dis", "farneback"):
            raise InvalidArgument(f"flow={self.flow!r} must be 'dis' or 'farneback'")


class FlowBlender:
    """Blend each frame's region with the flow-warped previous output. `reset()` at a
    segment start; frames must be fed in order."""

    def __init__(self, settings: TemporalSettings = TemporalSettings()):
        self.settings = settings
        self._prev: np.ndarray | None = None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if settings.flow == "dis" else None

    def reset(self) -> None:
        self._prev = None

    def __call__(self, frame: np.ndarray, box: Box | None = None) -> np.ndarray:
        """frame: (H, W, 3) uint8 BGR; box: the generated region, None for the whole frame.
        Returns the blended (H, W, 3) uint8 frame (the first frame after a reset unchanged)."""
        prev, out = self._prev, frame
        if prev is not None and prev.shape == frame.shape:
            region = grow_box(box, self.settings.margin, frame.shape) if box else (0, 0, frame.shape[1], frame.shape[0])
            if region[2] - region[0] >= 8 and region[3] - region[1] >= 8:
                out = frame.copy()
                x0, y0, x1, y1 = region
                out[y0:y1, x0:x1] = self._blend(prev, frame, region)
        self._prev = out if out is not frame else frame.copy()  # never a view the caller may overwrite
        return out

    def _blend(self, prev: np.ndarray, frame: np.ndarray, region: Box) -> np.ndarray:
        x0, y0, x1, y1 = region
        cur = frame[y0:y1, x0:x1]
        flow = self._flow(cv2.cvtColor(cur, cv2.COLOR_BGR2GRAY), cv2.cvtColor(prev[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY))
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        warped = cv2.remap(prev, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        cur_f = cur.astype(np.float32)
        weight = blend_weight(warped - cur_f, self.settings) * edge_taper(cur.shape[:2])
        return blend(cur_f, warped, weight[..., None])

    def _flow(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """(h, w, 2) float32: where each current pixel was in the previous frame, relative."""
        if self._dis is not None:
            return self._dis.calc(cur, prev, None)
        return cv2.calcOpticalFlowFarneback(cur, prev, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def blend_weight(difference: np.ndarray, settings: TemporalSettings) -> np.ndarray:
    """Weight (h, w) float32 of the previous frame from warped-minus-current (h, w, 3) float32.

    The signed difference is blurred first so pixel noise averages out while real
    disagreement (an edge that moved) stays large.
    """
    blurred = cv2.GaussianBlur(difference, (0, 0), 1.5)
    disagreement = np.abs(blurred).max(axis=2)
    return settings.strength * np.exp(-((disagreement / settings.tolerance) ** 2))


def edge_taper(shape: tuple[int, int], width: float = 0.15) -> np.ndarray:
    """(h, w) float32: 1 inside, falling linearly to 0 at the border over `width` x size."""
    h, w = shape
    ramp_y = np.clip(np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / max(1.0, width * h), 0, 1)
    ramp_x = np.clip(np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / max(1.0, width * w), 0, 1)
    return np.outer(ramp_y, ramp_x).astype(np.float32)


def grow_box(box: Box, margin: float, shape: tuple[int, ...]) -> Box:
    """Grow a box by `margin` x its size on each side, clipped to a frame of `shape` (H, W, ...)."""
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    h, w = shape[:2]
    return (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my))))
