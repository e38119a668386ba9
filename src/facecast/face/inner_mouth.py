"""Synthesize the inside of an open mouth: a dark cavity, a hint of teeth and tongue."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame
from facecast.compose import paste
from facecast.face.warp import smoothstep

MIN_GAP = 0.006  # face units: below this the mouth counts as closed and nothing is painted


@dataclass(frozen=True)
class MouthColors:
    """BGR float32 (3,) colours derived from the avatar's own lips and skin."""

    cavity: np.ndarray
    tongue: np.ndarray
    teeth: np.ndarray

    @classmethod
    def sample(cls, frame: np.ndarray, landmarks: np.ndarray) -> "MouthColors":
        """frame: (H, W, 3) uint8 BGR; landmarks: (478, 2+) px."""
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(landmarks[topo.LIPS_OUTER, :2]).astype(np.int32)], 1)
        inner = np.concatenate([landmarks[topo.LIPS_INNER_UPPER, :2], landmarks[topo.LIPS_INNER_LOWER[::-1], :2]])
        cv2.fillPoly(mask, [np.round(inner).astype(np.int32)], 0)
        lips = frame[mask.astype(bool)].astype(np.float32)
        lip = lips.mean(0) if len(lips) else np.array([90, 100, 150], np.float32)
        grey = float(lip.mean())
        light = float(np.clip(grey / 120.0, 0.55, 1.25))
        tint = lip / max(grey, 1.0)
        return cls(
            cavity=(lip * 0.26).astype(np.float32),
            tongue=(lip * 0.55).astype(np.float32),
            teeth=np.clip(175.0 * light * (0.9 + 0.1 * tint), 0, 255).astype(np.float32),
        )


def paint_mouth(out: np.ndarray, face: FaceFrame, upper: np.ndarray, lower: np.ndarray,
                colors: MouthColors, to_image, opacity: float = 1.0) -> None:
    """Paint the cavity between the output inner-lip edges into `out` in place.

    out: (H, W, 3) uint8 BGR frame
    upper, lower: (K, 2) inner-lip edges in face units, from one corner to the other
    to_image: maps (N, 2) face units -> (N, 2) px (includes any head motion)
    opacity: 0..1, scales the painted mouth's coverage (the live portrait fades it in)
    """
    if inner_lip_opening(upper, lower) < MIN_GAP:
        return
    poly = to_image(np.concatenate([upper, lower[::-1]]))
    H, W = out.shape[:2]
    x0, y0 = np.floor(poly.min(0)).astype(int) - 2
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1 <= x0 or y1 <= y0:
        return
    alpha = _polygon_alpha(poly - [x0, y0], (y1 - y0, x1 - x0))
    if opacity != 1.0:
        alpha *= np.float32(opacity)
    a, b = _face_coords(face, x0, y0, x1, y1)
    paste(out, _inside_colors(a, b, upper, lower, colors), alpha, x0, y0)


def inner_lip_opening(upper: np.ndarray, lower: np.ndarray) -> float:
    """Largest opening (face units, >= 0) between inner-lip edges upper, lower: (K, 2) face
    units sampled at the same a."""
    return float(max(0.0, (lower[:, 1] - upper[:, 1]).max()))


def _polygon_alpha(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (h, w) float32 of a polygon in local pixels."""
    shift = 4
    mask = np.zeros(shape, np.uint8)
    pts = np.round(poly * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=shift)
    return cv2.GaussianBlur(mask, (3, 3), 0.6).astype(np.float32) / 255.0


def _face_coords(face: FaceFrame, x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    ab = face.to_face(np.stack([xs, ys], axis=-1))
    return ab[..., 0], ab[..., 1]


def _inside_colors(a, b, upper, lower, colors: MouthColors) -> np.ndarray:
    """Colour (h, w, 3) float32 of the mouth interior at face coordinates a, b."""
    top = np.interp(a, upper[:, 0], upper[:, 1])
    bottom = np.interp(a, lower[:, 0], lower[:, 1])
    gap = np.maximum(bottom - top, 1e-4)
    depth = np.clip((b - top) / gap, 0.0, 1.0)
    center, half = upper[:, 0].mean(), max((upper[-1, 0] - upper[0, 0]) / 2, 1e-3)
    across = np.abs(a - center) / half
    shade = 1.0 - 0.35 * across ** 2
    col = colors.cavity[None, None, :] * (0.8 + 0.4 * np.abs(depth - 0.5))[..., None]
    tongue = smoothstep((depth - 0.55) / 0.35) * smoothstep((gap - 0.08) / 0.08)
    col = col + (colors.tongue - colors.cavity)[None, None, :] * (0.6 * tongue)[..., None]
    tooth_h = np.minimum(0.045, 0.38 * gap)
    upper_teeth = (1.0 - smoothstep((b - top - tooth_h) / 0.012)) * (1.0 - smoothstep((across - 0.7) / 0.2))
    low_h = np.clip(0.2 * (gap - 0.18), 0.0, 0.025)
    lower_teeth = (1.0 - smoothstep((bottom - b - low_h) / 0.01)) * (low_h > 0) * (1.0 - smoothstep((across - 0.6) / 0.2))
    teeth = np.clip(upper_teeth + 0.8 * lower_teeth, 0.0, 1.0) * shade
    col = col + (colors.teeth[None, None, :] * shade[..., None] - col) * teeth[..., None]
    return col.astype(np.float32)
