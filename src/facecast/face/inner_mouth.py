"""Synthesize the inside of an open mouth: upper teeth fixed to the skull, lower teeth and
tongue riding on the jaw, a dark cavity, and a soft, shaded inner lip edge.

All geometry is in face units (unit = outer eye-corner distance, about 9 cm), so the mouth
looks the same at any size in pixels. Upper teeth hang from where the lips meet when closed
(that line moves with the skull, not with the lips); lower teeth and tongue keep their
distance to the lower lip (they move with the jaw). A source photo that already shows its
upper teeth keeps them: that band, just under the upper lip, is left as the warp made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.face_frame import FaceFrame
from facecast.compose import paste
from facecast.face.warp import smoothstep

UPPER_LIP_SHARE = 0.15  # share of a mouth opening taken by the upper lip; the rest is the jaw's
MIN_GAP = 0.006  # face units: below this the mouth counts as closed and nothing is painted
EDGE_SOFT = 0.010  # face units: the inner lip edge's soft ramp ...
EDGE_MIN_PX = 1.2  # ... but at least this many pixels
LIP_SHADOW = 0.016  # face units: depth of the shadow the lips cast into the mouth
TEETH_SHOW = 0.040  # face units: upper incisors below the line where the closed lips meet
LOWER_TEETH = 0.030  # face units: most of the lower incisors that shows above the lower lip
TONGUE = 0.075  # face units: most of the tongue that shows above the lower lip
TOOTH_GAP = 0.0035  # face units: half-width of the dark line between two teeth
ARCH_RADIUS = 0.30  # face units: radius of the dental arch seen from the front
UPPER_TEETH_S = np.array([0.0, 0.094, 0.166, 0.251, 0.330, 0.405])  # arc length of the gaps from the midline
LOWER_TEETH_S = np.array([0.0, 0.058, 0.122, 0.200, 0.278, 0.355])
OWN_TEETH_MIN = 0.012  # face units: a source showing less of its upper teeth counts as showing none
OWN_TEETH_EDGE = 0.035  # face units: the source's teeth must start this close under its upper inner lip
OWN_TEETH_ACROSS = 0.5  # share of the mouth half-width over which the own teeth are kept whole (then fade out)


@dataclass(frozen=True)
class MouthColors:
    """BGR float32 (3,) colours derived from the avatar's own lips, skin and teeth.

    own_teeth: face units of the source's own upper teeth visible under its upper inner lip
    (0.0: none); painting leaves that band to the warped source.
    """

    cavity: np.ndarray
    tongue: np.ndarray
    teeth: np.ndarray
    own_teeth: float = 0.0

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
        teeth = np.clip(190.0 * light * (0.92 + 0.08 * tint), 0, 255).astype(np.float32)
        own, own_colour = _own_teeth(frame, landmarks, grey)
        return cls(
            cavity=(lip * 0.30).astype(np.float32),
            tongue=(lip * 0.80).astype(np.float32),
            teeth=teeth if own_colour is None else own_colour,
            own_teeth=own,
        )


def _own_teeth(frame: np.ndarray, landmarks: np.ndarray, lip_grey: float) -> tuple[float, np.ndarray | None]:
    """Height (face units) and median colour (BGR float32) of the upper teeth the source shows
    under its upper inner lip, over the middle half of the mouth; (0.0, None) when none."""
    face = FaceFrame.from_landmarks(landmarks)
    upper = face.to_face(landmarks[topo.LIPS_INNER_UPPER, :2])
    lower = face.to_face(landmarks[topo.LIPS_INNER_LOWER, :2])
    center = 0.5 * (upper[0, 0] + upper[-1, 0])
    half = 0.5 * abs(upper[-1, 0] - upper[0, 0])
    a = np.linspace(center - 0.5 * half, center + 0.5 * half, 9)
    top, bottom = _along(upper, a), _along(lower, a)
    if (bottom - top).max() * face.scale < 3.0:  # closed, or too small to tell
        return 0.0, None
    step = 0.5 / face.scale  # half a pixel
    heights, colours = [], []
    for ai, t, b in zip(a, top, bottom):
        bs = np.arange(t, b, step)
        px = np.round(face.to_image(np.stack([np.full_like(bs, ai), bs], 1))).astype(int)
        px[:, 0] = np.clip(px[:, 0], 0, frame.shape[1] - 1)
        px[:, 1] = np.clip(px[:, 1], 0, frame.shape[0] - 1)
        col = frame[px[:, 1], px[:, 0]].astype(np.float32)
        bright = col.mean(1) > max(1.2 * lip_grey, 110.0)
        pale = (col.max(1) - col.min(1)) < 0.45 * np.maximum(col.max(1), 1.0)
        teeth = bright & pale
        # the teeth start within the lip's soft inner edge and run down from there
        first = np.flatnonzero(teeth[: int(OWN_TEETH_EDGE / step)])
        if not len(first):
            heights.append(0.0)
            continue
        after = np.flatnonzero(~teeth[first[0]:])
        n = first[0] + (after[0] if len(after) else len(teeth) - first[0])
        heights.append(n * step)
        colours.append(col[first[0]:n])
    height = float(np.median(heights))
    if height < OWN_TEETH_MIN or not colours:
        return 0.0, None
    return height, np.median(np.concatenate(colours), axis=0).astype(np.float32)


def paint_mouth(out: np.ndarray, face: FaceFrame, upper: np.ndarray, lower: np.ndarray,
                colors: MouthColors, to_image, opacity: float = 1.0) -> None:
    """Paint the mouth's inside between the output inner-lip edges into `out` in place.

    out: (H, W, 3) uint8 BGR frame
    upper, lower: (K, 2) inner-lip edges in face units (of `face`), from one corner to the other
    to_image: maps (N, 2) face units -> (N, 2) px (includes any head motion; taken as affine
        over the mouth)
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
    a, b, px_per_unit = _face_coords(to_image, upper, x0, y0, x1, y1)
    inside, alpha = _inside(a, b, upper, lower, colors, px_per_unit)
    if opacity != 1.0:
        alpha = alpha * np.float32(opacity)
    paste(out, inside, alpha, x0, y0)


def inner_lip_opening(upper: np.ndarray, lower: np.ndarray) -> float:
    """Largest opening (face units, >= 0) between inner-lip edges upper, lower: (K, 2) face
    units sampled at the same a."""
    return float(max(0.0, (lower[:, 1] - upper[:, 1]).max()))


def _face_coords(to_image, upper: np.ndarray, x0: int, y0: int, x1: int, y1: int):
    """Face coordinates a, b (h, w) float32 of the output pixels of a box, through the inverse
    of to_image (affine over the mouth), and its scale in px per face unit."""
    c = upper.mean(0)
    ref = to_image(np.array([c, c + (1.0, 0.0), c + (0.0, 1.0)]))
    (p, q), (r, t) = ref[1] - ref[0], ref[2] - ref[0]  # face -> px linear part: [[p, r], [q, t]]
    det = p * t - r * q
    inv = np.array([[t, -r], [-q, p]]) / (det if abs(det) > 1e-9 else 1e-9)
    xs = np.arange(x0, x1, dtype=np.float32) - np.float32(ref[0, 0])
    ys = np.arange(y0, y1, dtype=np.float32) - np.float32(ref[0, 1])
    a = (inv[0, 0] * xs[None, :] + inv[0, 1] * ys[:, None] + c[0]).astype(np.float32)
    b = (inv[1, 0] * xs[None, :] + inv[1, 1] * ys[:, None] + c[1]).astype(np.float32)
    return a, b, float(np.sqrt(abs(det)))


def _along(edge: np.ndarray, a: np.ndarray) -> np.ndarray:
    order = np.argsort(edge[:, 0])
    return np.interp(a, edge[order, 0], edge[order, 1])


def _tooth_lines(across_units: np.ndarray, gaps_s: np.ndarray) -> np.ndarray:
    """Darkness 0..1 (same shape, float32) of the lines between teeth at horizontal offsets
    `across_units` (face units from the midline) for teeth whose gaps lie at arc lengths
    gaps_s (a tuple-able array) on the dental arch."""
    grid, table = _tooth_table(tuple(float(g) for g in gaps_s))
    return np.interp(np.abs(across_units), grid, table).astype(np.float32)


@lru_cache(maxsize=4)
def _tooth_table(gaps_s: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """_tooth_lines sampled every 0.0005 face units from the midline out: (grid, darkness)."""
    grid = np.arange(0.0, 0.6, 0.0005)
    s = np.asarray(gaps_s)
    gaps_a = ARCH_RADIUS * np.sin(np.minimum(s / ARCH_RADIUS, np.pi / 2))
    d = np.abs(grid[:, None] - gaps_a).min(-1)
    # the arch turns away towards the corners: the lines there fade into the teeth's shadow
    return grid, np.exp(-(d / TOOTH_GAP) ** 2) * (0.45 + 0.55 * np.cos(np.minimum(grid / ARCH_RADIUS, 1.5)))


def _inside(a, b, upper, lower, colors: MouthColors, px_per_unit: float):
    """Colour (h, w, 3) float32 of the mouth's inside and its coverage alpha (h, w) float32
    at face coordinates a, b (h, w)."""
    top = _along(upper, a).astype(np.float32)
    bottom = _along(lower, a).astype(np.float32)
    gap = np.maximum(bottom - top, 1e-4)
    center = 0.5 * (upper[0, 0] + upper[-1, 0])
    half = max(0.5 * abs(upper[-1, 0] - upper[0, 0]), 1e-3)
    x = (a - center)  # face units from the midline
    across = np.minimum(np.abs(x) / half, 1.0)
    # where the lips meet when closed: fixed to the skull while the jaw moves
    contact = top + UPPER_LIP_SHARE * gap
    depth_dark = 1.0 - 0.35 * across ** 2  # the corners are in the cheeks' shadow
    teeth_dark = 1.0 - 0.55 * across ** 2  # and the teeth there turn away from the light
    # cavity: dark, darkest under the upper teeth, lighter towards the floor of the mouth
    down = np.clip((b - top) / gap, 0.0, 1.0)
    col = colors.cavity[None, None, :] * (depth_dark * (0.5 + 0.8 * down ** 1.5))[..., None]
    # tongue: rides on the jaw, a dome behind the lower teeth, lit on its front
    tongue_h = np.clip(0.45 * (gap - 0.05), 0.0, TONGUE) * np.sqrt(np.maximum(1.0 - across ** 2, 0.0))
    tongue_top = bottom - tongue_h
    on_tongue = smoothstep((b - tongue_top) / 0.006) * (tongue_h > 0.004)
    lit = 0.55 + 0.45 * smoothstep((b - tongue_top) / np.maximum(0.8 * tongue_h, 1e-3))
    tongue = colors.tongue[None, None, :] * (lit * depth_dark)[..., None]
    col += (tongue - col) * on_tongue[..., None]
    # lower teeth: ride on the jaw just above the lower lip, in the upper teeth's shadow
    low_h = np.clip(0.3 * (gap - 0.03), 0.0, LOWER_TEETH)
    low_edge = bottom - low_h
    # (towards the corners they turn away into the dark, rather than shrinking to a sliver)
    on_low = smoothstep((b - low_edge) / 0.006) * (low_h > 0.003) * (1.0 - smoothstep((across - 0.35) / 0.35))
    near_edge = smoothstep((low_edge + 0.6 * low_h - b) / np.maximum(0.4 * low_h, 1e-3))
    low_lines = _tooth_lines(x, LOWER_TEETH_S) * (0.35 + 0.65 * near_edge)
    low_col = colors.teeth[None, None, :] * (0.85 * teeth_dark * (1.0 - 0.4 * low_lines))[..., None]
    col += (low_col - col) * on_low[..., None]
    # upper teeth: fixed to the skull, from the upper lip down to the incisal edge
    edge = contact + TEETH_SHOW * (1.0 - 0.6 * across ** 2)
    if colors.own_teeth > 0.0:  # the source's own teeth, carried by the upper lip, continued sideways
        edge = top + colors.own_teeth * (1.0 - 0.5 * across ** 2)
    on_up = (1.0 - smoothstep((b - edge) / 0.004)) * (1.0 - smoothstep((across - 0.78) / 0.2))
    toward_edge = np.clip((b - top) / np.maximum(edge - top, 1e-3), 0.0, 1.0)
    up_lines = _tooth_lines(x, UPPER_TEETH_S) * (0.15 + 0.85 * toward_edge ** 3)
    convex = 0.93 + 0.07 * (1.0 - across ** 2)
    up_shade = teeth_dark * convex * (1.0 - 0.45 * up_lines) * (1.0 - 0.12 * smoothstep((toward_edge - 0.75) / 0.25))
    up_col = colors.teeth[None, None, :] * up_shade[..., None]
    col += (up_col - col) * on_up[..., None]
    # the lips' inner edges curl in and shade what lies just behind them
    shadow = 1.0 - 0.4 * np.exp(-(b - top) / LIP_SHADOW) - 0.2 * np.exp(-(bottom - b) / (0.6 * LIP_SHADOW))
    col *= np.clip(shadow, 0.2, 1.0)[..., None]
    # coverage: a soft ramp inside both lip edges (and so at the corners, where they meet)
    soft = max(EDGE_SOFT, EDGE_MIN_PX / max(px_per_unit, 1e-6))
    a_lo, a_hi = min(upper[:, 0].min(), lower[:, 0].min()), max(upper[:, 0].max(), lower[:, 0].max())
    alpha = smoothstep(np.minimum(np.minimum(b - top, bottom - b), np.minimum(a - a_lo, a_hi - a)) / soft)
    if colors.own_teeth > 0.0:
        # keep the source's own upper teeth: the warp carries them under the upper lip
        # (where the mouth is less open than the source's, the warp squeezes them: paint there)
        keep = (1.0 - smoothstep((b - top - colors.own_teeth) / 0.006)) \
            * (1.0 - smoothstep((across - OWN_TEETH_ACROSS) / 0.25))
        keep *= smoothstep((gap - colors.own_teeth) / 0.02)
        alpha *= 1.0 - keep
    return col.astype(np.float32), alpha.astype(np.float32)
