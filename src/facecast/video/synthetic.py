"""Synthetic clips with known ground truth, built from real portraits, for tests and benchmarks.

Nothing here is used by the pipeline itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from facecast.media.writer import Mp4Writer
from facecast.video.transforms import similarity

SCENE_PORTRAITS = ("man_glasses_01.jpg", "woman_face_near_left_edge_01.jpg", "man_webcam_offcenter_01.jpg",
                   "child_photo_in_hand_01.jpg", "stylised_3d_cartoon_boy_01.jpg")


def load_image(path: Path, height: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR, optionally resized to `height` px keeping the aspect."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    if height:
        img = cv2.resize(img, (int(round(img.shape[1] * height / img.shape[0])), height),
                         interpolation=cv2.INTER_AREA)
    return img


def scene(portraits_dir: Path, height: int = 360) -> np.ndarray:
    """A wide textured scene (height, W, 3) uint8: portraits side by side."""
    return np.hstack([load_image(portraits_dir / name, height) for name in SCENE_PORTRAITS])


def fabric(portraits_dir: Path, size: tuple[int, int]) -> np.ndarray:
    """A person-free textured background (h, w, 3) uint8 of `size` (w, h): the pink fabric
    beside the photo in child_photo_in_hand_01.jpg, turned sideways."""
    img = load_image(portraits_dir / "child_photo_in_hand_01.jpg")
    strip = cv2.rotate(img[90:640, 560:708], cv2.ROTATE_90_CLOCKWISE)
    return cv2.resize(strip, size, interpolation=cv2.INTER_AREA)


def shaky_pan(n: int, size: tuple[int, int], *, pan_px: float, shake_px: float, shake_deg: float,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Camera views of a pan with random shake on top.

    Returns (pan, shake): (n, 3, 3) float64 each. pan[i] maps scene px -> frame px for the
    deliberate pan (pan_px per frame to the right); shake[i] is the injected similarity about
    the frame centre (white noise: translation std shake_px, rotation std shake_deg). The
    shaky view is shake[i] @ pan[i].
    """
    rng = np.random.default_rng(seed)
    center = (size[0] / 2.0, size[1] / 2.0)
    pan = np.array([[[1, 0, -pan_px * i], [0, 1, 0], [0, 0, 1]] for i in range(n)], np.float64)
    noise = np.column_stack([rng.normal(0, shake_px, (n, 2)), np.deg2rad(rng.normal(0, shake_deg, n)), np.zeros(n)])
    shake = np.array([similarity(p, center) for p in noise])
    return pan, shake


def view(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Render the (w, h) = size frame seeing `image` through a (3, 3) scene -> frame matrix."""
    return cv2.warpAffine(image, matrix[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def write_mp4(path: Path, frames: Iterable[np.ndarray], size: tuple[int, int], fps: int = 25, crf: int = 12) -> Path:
    """Encode (H, W, 3) uint8 BGR frames to an MP4 (near-lossless by default)."""
    with Mp4Writer(path, size, fps, None, crf=crf, preset="ultrafast") as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def person_cutout(image: np.ndarray, matte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop a person to its matte's bounding box: ((h, w, 3) uint8, (h, w) float32 alpha)."""
    ys, xs = np.nonzero(matte > 0.5)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return image[y0:y1, x0:x1].copy(), matte[y0:y1, x0:x1].astype(np.float32)


def paste_alpha(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-blend `sprite` (h, w, 3) into a copy of `frame` (H, W, 3) with its top-left at (x, y)."""
    out = frame.copy()
    h, w = sprite.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x), max(0, y), min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if fx0 >= fx1 or fy0 >= fy1:
        return out
    s = sprite[fy0 - y: fy1 - y, fx0 - x: fx1 - x].astype(np.float32)
    a = alpha[fy0 - y: fy1 - y, fx0 - x: fx1 - x, None]
    roi = out[fy0:fy1, fx0:fx1].astype(np.float32)
    out[fy0:fy1, fx0:fx1] = (a * s + (1 - a) * roi + 0.5).astype(np.uint8)
    return out
