"""Similarity transforms (3x3 float64) and the camera-path file saved beside an avatar.

A similarity is parametrised about the frame centre c as p = (tx, ty, angle, log_scale):
x' = s R(angle) (x - c) + c + t, with s = exp(log_scale), angle in radians, t in px.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.errors import CorruptMedia, UnsupportedMedia
from facecast.video.output import write_json

FORMAT = "facecast.camera-path/1"


def similarity(params: np.ndarray, center: tuple[float, float]) -> np.ndarray:
    """params (4,) = (tx, ty, angle, log_scale) -> (3, 3) float64 matrix."""
    tx, ty, angle, log_scale = (float(v) for v in params)
    s = np.exp(log_scale)
    a, b = s * np.cos(angle), s * np.sin(angle)
    cx, cy = center
    return np.array([[a, -b, cx + tx - a * cx + b * cy],
                     [b, a, cy + ty - b * cx - a * cy],
                     [0.0, 0.0, 1.0]])


def params_of(matrix: np.ndarray, center: tuple[float, float]) -> np.ndarray:
    """(3, 3) or (2, 3) similarity -> (4,) float64 (tx, ty, angle, log_scale) about `center`."""
    a, b = matrix[0, 0], matrix[1, 0]
    c = np.array(center, dtype=np.float64)
    moved = matrix[:2, :2] @ c + matrix[:2, 2]
    tx, ty = moved - c
    return np.array([tx, ty, np.arctan2(b, a), np.log(max(np.hypot(a, b), 1e-9))])


def to3x3(affine: np.ndarray) -> np.ndarray:
    """(2, 3) affine -> (3, 3) float64."""
    return np.vstack([np.asarray(affine, np.float64)[:2], [0.0, 0.0, 1.0]])


def rescale(matrix: np.ndarray, factor: float) -> np.ndarray:
    """A (3, 3) transform measured on frames scaled by `factor`, expressed at full size."""
    s = np.diag([factor, factor, 1.0])
    return np.linalg.inv(s) @ matrix @ s


def corner_shift(matrix: np.ndarray, size: tuple[int, int]) -> float:
    """Mean displacement (px) of the four frame corners under a (3, 3) transform."""
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
    return float(np.linalg.norm((matrix @ corners - corners)[:2], axis=0).mean())


@dataclass
class CameraPath:
    """The camera motion of a video and the warps that stabilise it.

    camera: (F, 4) float64 path params per frame (frame 0 = identity), see module doc
    smoothed: (F, 4) float64 the smoothed path
    warps: (F, 3, 3) float64 stabilising warp of frame i: original px -> stabilised px
    size: (width, height) in px the matrices refer to; window: smoothing window in frames
    """

    camera: np.ndarray
    smoothed: np.ndarray
    warps: np.ndarray
    size: tuple[int, int]
    fps: float
    window: int

    def warp(self, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Stabilising (3, 3) warp of frame `index`, rescaled to frames of `size` (w, h)."""
        matrix = self.warps[index]
        if size is not None and tuple(size) != tuple(self.size):
            matrix = rescale(matrix, self.size[0] / size[0])
        return matrix

    def save(self, path: Path) -> Path:
        """Write the path as JSON (atomically)."""
        return write_json(path, {
            "format": FORMAT, "width": self.size[0], "height": self.size[1], "fps": self.fps,
            "window": self.window, "frames": len(self.warps),
            "camera": np.round(self.camera, 6).tolist(),
            "smoothed": np.round(self.smoothed, 6).tolist(),
            "warps": np.round(self.warps[:, :2].reshape(-1, 6), 8).tolist(),
        })

    @classmethod
    def load(cls, path: Path) -> "CameraPath":
        """Read a path written by `save`; CorruptMedia names the file when it is not one."""
        try:
            data = json.loads(Path(path).read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            warps = np.array(data["warps"], np.float64).reshape(-1, 2, 3)
            full = np.concatenate([warps, np.tile([[[0.0, 0.0, 1.0]]], (len(warps), 1, 1))], axis=1)
            return cls(np.array(data["camera"]), np.array(data["smoothed"]), full,
                       (int(data["width"]), int(data["height"])), float(data["fps"]), int(data["window"]))
        except FileNotFoundError:
            raise UnsupportedMedia(f"{path}: no such camera-path file") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptMedia(f"{path}: not a facecast camera-path JSON ({exc})") from None
