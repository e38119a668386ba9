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


def plain_wall(size: tuple[int, int], seed: int = 0, blotches: float = 0.0) -> np.ndarray:
    """A low-texture background (h, w, 3) uint8 of `size` (w, h): a painted wall, a smooth
    shading gradient with no corners to speak of, plus soft blotches of `blotches` grey
    levels (std)."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 150.0 + 25.0 * (x / w) - 15.0 * (y / h)
    blotch = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 12)
    grey = shade + blotches * blotch / max(float(blotch.std()), 1e-6)
    tint = np.array([0.92, 1.0, 1.06], np.float32)  # a warm off-white
    return np.clip(grey[..., None] * tint + 0.5, 0, 255).astype(np.uint8)


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


def data_dir() -> Path:
    """The shared test media folder (../shared/data from the repository root)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"  # tests/support/ -> repository


def shaky_clip(path: Path, portraits_dir: Path, *, n: int = 100, size: tuple[int, int] = (320, 240),
               pan_px: float = 2.0, shake_px: float = 4.0, shake_deg: float = 0.5, seed: int = 1) -> dict:
    """Write a panning, shaking camera over a portrait mosaic. Returns the ground truth:
    {"scene", "base", "pan", "shake"}; frame i shows view(scene, shake[i] @ pan[i] @ base)."""
    world = scene(portraits_dir, 360)
    base = np.array([[1.0, 0, -40], [0, 1, -60], [0, 0, 1]])
    pan, shake = shaky_pan(n, size, pan_px=pan_px, shake_px=shake_px, shake_deg=shake_deg, seed=seed)
    write_mp4(path, (view(world, shake[i] @ pan[i] @ base, size) for i in range(n)), size)
    return {"scene": world, "base": base, "pan": pan, "shake": shake}


def shaky_person_clip(path: Path, portraits_dir: Path, *, n: int = 100, size: tuple[int, int] = (320, 240),
                      pan_px: float = 2.0, shake_px: float = 4.0, shake_deg: float = 0.5, sway_px: float = 8.0,
                      seed: int = 1, background: str = "fabric") -> dict:
    """Write a person (cut out of a portrait) over fabric, filmed by a shaking camera that pans
    to follow them: the person stays near the frame centre, swaying sway_px side to side (a
    50-frame period), while the background pans by pan_px per frame. Returns the ground truth
    {"truth": (n, h, w, 3) uint8, what the pan alone shows (person included), "pan", "shake":
    (n, 3, 3) float64 as from shaky_pan}. background: "fabric" (textured) or "plain" (plain_wall)."""
    w, h = size
    margin = 40  # px of scene around the views, room for the shake
    bg_size = (w + int(np.ceil(pan_px * n)) + 2 * margin, h + 2 * margin)
    bg = plain_wall(bg_size, seed) if background == "plain" else fabric(portraits_dir, bg_size)
    sprite, alpha = person_sprite(portraits_dir, int(0.8 * h))
    base = np.array([[1.0, 0, -margin], [0, 1, -margin], [0, 0, 1]])
    pan, shake = shaky_pan(n, size, pan_px=pan_px, shake_px=shake_px, shake_deg=shake_deg, seed=seed)
    xs = margin + pan_px * np.arange(n) + (w - sprite.shape[1]) / 2 + sway_px * np.sin(2 * np.pi * np.arange(n) / 50)
    truth = []

    def shots():
        for i, x in enumerate(xs):
            world = paste_alpha(bg, sprite, alpha, int(round(x)), margin + h - sprite.shape[0])
            truth.append(view(world, pan[i] @ base, size))
            yield view(world, shake[i] @ pan[i] @ base, size)

    write_mp4(path, shots(), size)
    return {"truth": np.stack(truth), "pan": pan, "shake": shake}


def person_sprite(portraits_dir: Path, height: int = 200, name: str = "man_frontal_mouth_open_01.jpg"):
    """A real person cut out of a portrait with selfie segmentation: ((h, w, 3) uint8, (h, w) alpha)."""
    from facecast.video.matte import PersonSegmenter

    person = load_image(portraits_dir / name, height)
    with PersonSegmenter() as seg:
        return person_cutout(person, seg.matte(person))


def plate_clip(path: Path, portraits_dir: Path, *, n: int = 60, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A person over a known background: mostly in the middle (swaying a little), stepping
    to the left edge for the first fifth and to the right edge for the last fifth. The middle
    is covered in most frames, so a plain median keeps the person there. Returns the
    background (h, w, 3) uint8."""
    bg = fabric(portraits_dir, size)
    sprite, alpha = person_sprite(portraits_dir, int(size[1] * 0.85))
    w = sprite.shape[1]
    centre = (size[0] - w) / 2
    t = np.arange(n) / n
    xs = np.where(t < 0.2, -0.55 * w, np.where(t >= 0.8, size[0] - 0.45 * w, centre + 10 * np.sin(12 * t)))
    frames = (paste_alpha(bg, sprite, alpha, int(x), size[1] - sprite.shape[0]) for x in xs)
    write_mp4(path, frames, size)
    return bg


def noisy_mouth(portraits_dir: Path, *, n: int = 30, size: int = 200, noise: float = 8.0, fast: bool = False,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A face crop with white noise, the mouth region either still or jumping fast.

    Returns (clean, noisy, box): (n, size, size, 3) uint8 twice and the mouth box x0, y0, x1, y1.
    """
    face = load_image(portraits_dir / "man_frontal_mouth_open_01.jpg", size)[:, :size]
    box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
    clean = []
    for t in range(n):
        frame = face.copy()
        if fast:  # a dark mouth shape jumping 12 px per frame and changing its opening
            cx = box[0] + 20 + (t % 8) * 12 * size // 240
            cv2.ellipse(frame, (cx, size // 2), (18, 8 + 8 * (t % 3)), 0, 0, 360, (30, 20, 60), -1)
        clean.append(frame)
    clean = np.stack(clean)
    rng = np.random.default_rng(seed)
    noisy = np.clip(clean + rng.normal(0, noise, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy, box


def foot_scene(portraits_dir: Path, *, n: int = 90, size: tuple[int, int] = (320, 240), slide_px: float = 1.0):
    """A shoe sliding during two known contacts (with a swing between) and a second,
    planted shoe, over a textured floor.

    Returns (frames (n, h, w, 3) uint8, keypoints (n, 2, 3, 2) float32 px of ankle/heel/toe,
    contacts (n,) bool of the sliding foot).
    """
    bg = fabric(portraits_dir, size)
    frames, points, contacts = [], np.full((n, 2, 3, 2), np.nan, np.float32), np.zeros(n, bool)
    swing = (n // 3, n // 3 + 15)
    for t in range(n):
        c, contacts[t] = _sliding_foot(t, swing, slide_px)
        frame = bg.copy()
        _draw_shoe(frame, c)
        _draw_shoe(frame, np.array([290.0, 200.0]))
        frames.append(frame)
        points[t, 0] = [c + (-10, -12), c + (-16, 4), c + (18, 4)]
        points[t, 1] = [(280, 188), (274, 204), (308, 204)]
    return np.stack(frames), points, contacts


def _sliding_foot(t: int, swing: tuple[int, int], slide_px: float) -> tuple[np.ndarray, bool]:
    """Foot centre (2,) px at frame t and whether it is in contact."""
    a, b = swing
    if t < a:
        return np.array([70 + slide_px * t, 200.0]), True
    if t < b:
        s = (t - a) / (b - a)
        x0 = 70 + slide_px * a
        return np.array([x0 + 50 * s, 200 - 40 * np.sin(np.pi * s)]), False
    return np.array([70 + slide_px * a + 50 + slide_px * (t - b), 200.0]), True


def _draw_shoe(frame: np.ndarray, c: np.ndarray) -> None:
    """A dark shoe with an ankle, anti-aliased at sub-pixel positions."""
    q = 4  # sub-pixel bits: 2 -> coordinates x4
    cv2.ellipse(frame, (int(round(c[0] * q)), int(round(c[1] * q))), (18 * q, 7 * q), 0, 0, 360,
                (25, 25, 35), -1, cv2.LINE_AA, 2)
    cv2.circle(frame, (int(round((c[0] - 10) * q)), int(round((c[1] - 6) * q))), 8 * q, (60, 50, 40), -1,
               cv2.LINE_AA, 2)


def paper_doll(talking_clip: Path, *, n: int = 75, size: tuple[int, int] = (320, 480), slide_px: float = 0.8):
    """A full-body figure mediapipe pose recognises: a real upper body (first frame of a
    talking clip, cut out with selfie segmentation) on a drawn torso, arms and legs. Its
    image-left foot slides outward during two contacts with a swing between; the other stands.

    Returns (frames (n, h, w, 3) uint8, contacts (n,) bool, shoe (n, 2) float px centre of the
    sliding shoe).
    """
    from facecast.video.matte import PersonSegmenter
    from facecast.video.stream import frames as stream_frames, probe

    first = next(stream_frames(probe(talking_clip)))
    with PersonSegmenter() as seg:
        matte = seg.matte(first)
    body = _doll_body(first, matte, size)
    swing = (int(0.4 * n), int(0.4 * n) + 12)
    shoes, contacts, out = [], np.zeros(n, bool), []
    for t in range(n):
        shoe, contacts[t] = _doll_foot(t, swing, slide_px)
        frame = body.copy()
        _draw_leg(frame, (130, 280), shoe)
        _draw_leg(frame, (195, 280), np.array([215.0, 430.0]))
        out.append(frame)
        shoes.append(shoe)
    return np.stack(out), contacts, np.array(shoes)


def _doll_body(upper: np.ndarray, matte: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    canvas = np.full((h, w, 3), (200, 210, 190), np.uint8)
    cv2.rectangle(canvas, (0, 400), (w, h), (120, 140, 150), -1)
    up = cv2.resize(upper, (200, 200), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(matte, (200, 200))
    canvas = paste_alpha(canvas, up, alpha, 60, 25)
    suit = (40, 35, 35)
    cv2.rectangle(canvas, (90, 222), (230, 280), suit, -1)
    cv2.fillPoly(canvas, [np.array([[60, 200], [40, 200], [37, 313], [57, 313]])], suit)
    cv2.fillPoly(canvas, [np.array([[260, 200], [280, 200], [283, 313], [263, 313]])], suit)
    return canvas


def _doll_foot(t: int, swing: tuple[int, int], slide_px: float) -> tuple[np.ndarray, bool]:
    a, b = swing
    if t < a:
        return np.array([130 - slide_px * t, 430.0]), True
    x0 = 130 - slide_px * a
    if t < b:
        s = (t - a) / (b - a)
        return np.array([x0 + 34 * s, 430 - 30 * np.sin(np.pi * s)]), False
    return np.array([x0 + 34 - slide_px * (t - b), 430.0]), True


def _draw_leg(frame: np.ndarray, hip: tuple[int, int], shoe: np.ndarray) -> None:
    q = 4
    cv2.line(frame, hip, (int(shoe[0]), int(shoe[1] - 8)), (60, 50, 45), 26)
    cv2.ellipse(frame, (int(round(shoe[0] * q)) + 40, int(round(shoe[1] * q))), (24 * q, 9 * q), 0, 0, 360,
                (20, 20, 20), -1, cv2.LINE_AA, 2)


def panning_clip(path: Path, seconds: int, *, fps: int = 25, size: tuple[int, int] = (160, 120)) -> Path:
    """A small clip of `seconds` s: a mosaic of portraits seen by a slowly swinging camera."""
    world = scene(data_dir() / "portraits", 180)
    n = seconds * fps
    xs = 40 + 60 * np.sin(np.arange(n) * 2 * np.pi / 200)
    views = (view(world, np.array([[1.0, 0, -x], [0, 1, -20], [0, 0, 1]]), size) for x in xs)
    return write_mp4(path, views, size, fps=fps, crf=23)


def noisy_clip(path: Path, source: Path, *, seconds: float = 4.0, long_side: int = 192, noise: float = 6.0) -> Path:
    """A real clip scaled to `long_side` px with white noise added (work for temporal blending)."""
    from facecast.video.stream import frames as stream_frames, probe

    info = probe(source, max_long_side=long_side)
    rng = np.random.default_rng(0)
    count = int(seconds * info.fps)
    noisy = (np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
             for _, f in zip(range(count), stream_frames(info)))
    return write_mp4(path, noisy, info.size, fps=int(round(info.fps)))
