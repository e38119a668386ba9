"""Compositing: put generated pixels back into a frame without seams (blend, paste), and the
soft masks and safe crops around them. Every renderer blends through blend(): the classic
backend's painted mouth, the musetalk paste on the device, the live portrait's mouth."""

from __future__ import annotations

import cv2
import numpy as np


def safe_crop(img: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """Crop (height, width) at (x0, y0) from `img` (H, W, C); outside pixels replicate the border.

    Never indexes out of bounds: a face touching the image edge gets a padded crop.
    """
    h, w = img.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + width - w), max(0, y0 + height - h)
    inner = img[max(0, y0): min(h, y0 + height), max(0, x0): min(w, x0 + width)]
    if pad_l or pad_t or pad_r or pad_b:
        inner = cv2.copyMakeBorder(inner, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    return inner


def clip_box(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Intersect a box with the frame [0, width) x [0, height)."""
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def feathered_mask(polygon: np.ndarray, shape: tuple[int, int], feather_px: float) -> np.ndarray:
    """Soft mask of a polygon, feathered inward so it is exactly 0 outside the polygon.

    polygon: (P, 2) float pixel coordinates; shape: (H, W)
    returns: (H, W) float32 in [0, 1]
    """
    hard = np.zeros(shape, np.uint8)
    cv2.fillPoly(hard, [np.round(polygon).astype(np.int32)], 255)
    if feather_px <= 0:
        return hard.astype(np.float32) / 255.0
    radius = max(1, int(round(feather_px)))
    eroded = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    soft = cv2.GaussianBlur(eroded, (0, 0), radius / 2.0).astype(np.float32) / 255.0
    soft[hard == 0] = 0.0
    return soft


def blend(base, overlay, alpha):
    """The one compositing formula: base + (overlay - base) * alpha, rounded to uint8.

    base, overlay: float32 arrays in 0..255 of one shape, e.g. (h, w, 3) BGR; numpy arrays, or
        torch tensors on any device (the musetalk paste runs it on the GPU)
    alpha: float32 in [0, 1] broadcastable to them, e.g. (h, w, 1); 0 keeps base, 1 takes overlay
    returns: uint8 of base's shape, numpy or torch as base. Where alpha == 0 it equals base
    (whole numbers) exactly.
    """
    mixed = base + (overlay - base) * alpha + 0.5
    if isinstance(mixed, np.ndarray):
        return np.clip(mixed, 0, 255).astype(np.uint8)
    import torch  # only reached with tensors, so torch is already loaded

    return mixed.clamp_(0.0, 255.0).to(torch.uint8)


def paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    """Blend `patch` into `frame` in place at (x0, y0) through a soft mask; clips at the borders.

    frame: (H, W, 3) uint8; patch: (h, w, 3) uint8 or float32 in 0..255; mask: (h, w) float32
    in [0, 1]. Pixels where mask == 0 stay bit-identical.
    """
    H, W = frame.shape[:2]
    h, w = patch.shape[:2]
    fx0, fy0, fx1, fy1 = clip_box(x0, y0, x0 + w, y0 + h, W, H)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    px0, py0 = fx0 - x0, fy0 - y0
    sub_patch = np.asarray(patch[py0: py0 + fy1 - fy0, px0: px0 + fx1 - fx0], np.float32)
    sub_mask = mask[py0: py0 + fy1 - fy0, px0: px0 + fx1 - fx0, None]
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = blend(region.astype(np.float32), sub_patch, sub_mask)
