"""Dense backward warps of a face region, built from smooth fields in face units.

A warp is a displacement field D over a box of the frame: the output pixel x takes
the source pixel x - D(x). Fields are evaluated on a half-resolution grid and
upsampled; where D == 0 the output is bit-identical to the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from facecast.avatar.face_frame import FaceFrame

GRID_STEP = 2  # px: the fields are evaluated every GRID_STEP pixels


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class WarpGrid:
    """The sample grid of a box of the frame.

    x0, y0, width, height: the box in pixels, inside the frame
    xs, ys: (h, w) float32 pixel coordinates of the coarse samples
    a, b: (h, w) float64 the same samples in face units
    """

    x0: int
    y0: int
    width: int
    height: int
    xs: np.ndarray
    ys: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @classmethod
    def over(cls, box: np.ndarray, frame_size: tuple[int, int], face: FaceFrame) -> "WarpGrid":
        """Grid over `box` (4,) px x0, y0, x1, y1 clipped to frame_size (w, h)."""
        W, H = frame_size
        x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x1, y1 = min(W, int(np.ceil(box[2])) + 1), min(H, int(np.ceil(box[3])) + 1)
        x0, y0 = x0 - x0 % GRID_STEP, y0 - y0 % GRID_STEP
        width, height = max(GRID_STEP, x1 - x0), max(GRID_STEP, y1 - y0)
        xs, ys = np.meshgrid(np.arange(x0, x0 + width, GRID_STEP, dtype=np.float32),
                             np.arange(y0, y0 + height, GRID_STEP, dtype=np.float32))
        ab = face.to_face(np.stack([xs, ys], axis=-1))
        return cls(x0, y0, width, height, xs, ys, ab[..., 0], ab[..., 1])

    @property
    def coarse_shape(self) -> tuple[int, int]:
        return self.xs.shape

    def region(self, box: np.ndarray) -> tuple[slice, slice]:
        """Coarse-grid slices (rows, cols) covering `box` (4,) px."""
        c0 = int(np.clip((box[0] - self.x0) // GRID_STEP, 0, self.xs.shape[1]))
        c1 = int(np.clip((box[2] - self.x0) // GRID_STEP + 2, 0, self.xs.shape[1]))
        r0 = int(np.clip((box[1] - self.y0) // GRID_STEP, 0, self.xs.shape[0]))
        r1 = int(np.clip((box[3] - self.y0) // GRID_STEP + 2, 0, self.xs.shape[0]))
        return slice(r0, r1), slice(c0, c1)

    def apply(self, source: np.ndarray, displacement: np.ndarray, out: np.ndarray) -> None:
        """Warp `source` (H, W, 3) uint8 into `out` (same shape) over this box.

        displacement: (h, w, 2) float32 pixels on the coarse grid (x, y components)
        """
        full = cv2.resize(displacement, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        base_x, base_y = _pixel_grid(self.width, self.height)
        map_x = (base_x + np.float32(self.x0)) - full[..., 0]
        map_y = (base_y + np.float32(self.y0)) - full[..., 1]
        warped = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[self.y0: self.y0 + self.height, self.x0: self.x0 + self.width] = warped


@lru_cache(maxsize=16)
def _pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (height, width) float32 x and y of a box at the origin (read-only)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys
