"""Quality measures with known ground truth: residual jitter, pan kept, plate PSNR, flicker,
foot slide. Used by the tests and the benchmarks; independent of the methods they measure
(registration here is ECC, not the Lucas-Kanade tracker stabilisation uses)."""

from __future__ import annotations

import cv2
import numpy as np

ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)


def register(reference: np.ndarray, frame: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """Euclidean transform (3, 3) float64 mapping `reference` px -> `frame` px (ECC).

    Both (H, W, 3) uint8; a border of `margin` x size is left out (warp borders).
    """
    ref = cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY).astype(np.float32)
    cur = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h, w = ref.shape
    mask = np.zeros((h, w), np.uint8)
    mask[int(h * margin): int(h * (1 - margin)), int(w * margin): int(w * (1 - margin))] = 255
    warp = np.eye(2, 3, dtype=np.float32)
    _, warp = cv2.findTransformECC(ref, cur, warp, cv2.MOTION_EUCLIDEAN, ECC_CRITERIA, mask, 5)
    # findTransformECC returns the map frame px -> reference px; invert it.
    full = np.vstack([warp.astype(np.float64), [0, 0, 1]])
    return np.linalg.inv(full)


def corners(matrices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Where the 4 frame corners go under each of (F, 3, 3) matrices -> (F, 4, 2) float64 px."""
    w, h = size
    pts = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
    return np.einsum("fij,jk->fki", matrices, pts)[:, :, :2]


def jitter(matrices: np.ndarray, size: tuple[int, int]) -> float:
    """Frame-to-frame shake (px): RMS corner movement between consecutive frames of a path of
    deviations (F, 3, 3) from the intended camera path."""
    c = corners(matrices, size)
    return float(np.sqrt((np.diff(c, axis=0) ** 2).sum(axis=2).mean()))


def deviation(matrices: np.ndarray, size: tuple[int, int]) -> float:
    """RMS corner offset (px) of a path of deviations (F, 3, 3) around its mean (slow drift included)."""
    c = corners(matrices, size)
    return float(np.sqrt(((c - c.mean(axis=0)) ** 2).sum(axis=2).mean()))


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images of the same shape."""
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def flicker(frames: np.ndarray, box: tuple[int, int, int, int] | None = None) -> float:
    """Mean absolute change (grey levels) between consecutive frames (T, H, W, 3) in box x0, y0, x1, y1."""
    x0, y0, x1, y1 = box or (0, 0, frames.shape[2], frames.shape[1])
    region = frames[:, y0:y1, x0:x1].astype(np.float32)
    return float(np.abs(np.diff(region, axis=0)).mean())


def slide(points: np.ndarray, contacts: np.ndarray) -> float:
    """Foot slide (px): for each contact, the farthest the foot gets from where it touched
    down, summed over contacts. points (F, 2) float px, contacts (F,) bool."""
    total = 0.0
    for start, stop in _runs(contacts):
        total += float(np.linalg.norm(points[start:stop] - points[start], axis=1).max())
    return total


def slide_path(points: np.ndarray, contacts: np.ndarray) -> float:
    """Path length (px) travelled during contacts (includes frame-to-frame jitter, also that
    of the measurement). points (F, 2) float px, contacts (F,) bool."""
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return float(step[contacts[1:] & contacts[:-1]].sum())


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


def track_patch(frames: np.ndarray, template: np.ndarray, search: tuple[int, int, int, int]) -> np.ndarray:
    """Where a template (h, w, 3) best matches (normalised cross-correlation) inside the search
    box x0, y0, x1, y1 of each frame (F, H, W, 3) -> (F, 2) float64 top-left px, sub-pixel."""
    x0, y0, x1, y1 = search
    out = []
    for frame in frames:
        score = cv2.matchTemplate(frame[y0:y1, x0:x1], template, cv2.TM_CCOEFF_NORMED)
        _, _, _, (bx, by) = cv2.minMaxLoc(score)
        dx, dy = _subpixel(score, bx, by)
        out.append((x0 + bx + dx, y0 + by + dy))
    return np.array(out, np.float64)


def _subpixel(score: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Parabolic refinement of a correlation peak."""
    def offset(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if abs(d) < 1e-9 else 0.5 * (a - c) / d
    h, w = score.shape
    dx = offset(score[y, x - 1], score[y, x], score[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(score[y - 1, x], score[y, x], score[y + 1, x]) if 0 < y < h - 1 else 0.0
    return float(dx), float(dy)
