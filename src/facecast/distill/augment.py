"""Seeded augmentation of face crops: a 256x256 view of a 320x320 context crop, with colour jitter.

A context crop holds the face crop (crops.face_crop's box) grown by CONTEXT / CROP about its centre,
so zooming out and shifting show real surroundings instead of a mirrored border. The identity view
(`view(context, None)`) is the face crop itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from facecast.lipsync.musetalk.crops import CROP

CONTEXT = 320  # px: side of a stored context crop (the face crop is its centre 256 x 256)


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes (each drawn uniformly in [-x, x] unless said otherwise).

    scale: relative zoom; shift: px of the 256 crop; rotate: degrees; flip: mirror with probability 0.5;
    brightness: added to [0, 1] values; contrast, saturation: relative; hue: degrees of hue rotation
    """

    scale: float = 0.08
    shift: float = 10.0
    rotate: float = 4.0
    flip: bool = True
    brightness: float = 0.08
    contrast: float = 0.15
    saturation: float = 0.2
    hue: float = 6.0


DEFAULT = Augmentation()
PARAMETERS = 9  # random numbers drawn per view, whatever the ranges (so a stream of views stays aligned)


def view(context: np.ndarray, rng: np.random.Generator | None, aug: Augmentation = DEFAULT) -> np.ndarray:
    """One training view: context (320, 320, 3) uint8 RGB -> (256, 256, 3) uint8 RGB.

    rng None: the plain centre crop (the face crop the model sees at run time).
    """
    margin = (CONTEXT - CROP) // 2
    if rng is None:
        return np.ascontiguousarray(context[margin: margin + CROP, margin: margin + CROP])
    u = rng.uniform(-1.0, 1.0, PARAMETERS)
    zoom = 1.0 + aug.scale * u[0]
    angle = math.radians(aug.rotate * u[1])
    dx, dy = aug.shift * u[2], aug.shift * u[3]
    flip = aug.flip and u[4] > 0
    # output pixel p -> context pixel c + R (p - o) / zoom + shift (o, c: the centres)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    o, c = (CROP - 1) / 2.0, (CONTEXT - 1) / 2.0
    sx = -cos if flip else cos
    sy = -sin if flip else sin
    matrix = np.array([[sx, -sin, c + dx - sx * o + sin * o],
                       [sy, cos, c + dy - sy * o - cos * o]], np.float64)
    out = cv2.warpAffine(context, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT_101)
    return _colour(out, u[5:], aug)


def _colour(image: np.ndarray, u: np.ndarray, aug: Augmentation) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of (H, W, 3) uint8 RGB with u (4,) in [-1, 1]."""
    x = image.astype(np.float32) / 255.0
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    if aug.hue:
        theta = math.radians(aug.hue * u[3])  # rotation about the grey axis
        k = np.ones(3, np.float32) / math.sqrt(3.0)
        cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], np.float32)
        rot = math.cos(theta) * np.eye(3, dtype=np.float32) + math.sin(theta) * cross \
            + (1 - math.cos(theta)) * np.outer(k, k)
        x = x @ rot.T.astype(np.float32)
    x = grey[..., None] + (x - grey[..., None]) * (1.0 + aug.saturation * u[2])
    mean = float(grey.mean())
    x = (x - mean) * (1.0 + aug.contrast * u[1]) + mean + aug.brightness * u[0]
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
