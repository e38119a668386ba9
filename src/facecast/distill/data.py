"""Training images: context crops of prepared avatars' faces and of other images, and the held-out split.

A context crop is (320, 320, 3) uint8 RGB: the face crop's box (lipsync.musetalk.crops) grown by
320/256 about its centre, so its centre 256 x 256 is the crop the model sees (augment.view).
Other images contribute their centre square. Everything is held in memory up to a cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from facecast.compose import safe_crop
from facecast.distill.augment import CONTEXT
from facecast.errors import InvalidArgument, UnsupportedMedia
from facecast.lipsync.musetalk import crops as crop_layout
from facecast.lipsync.musetalk.crops import CROP

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
GROW = CONTEXT / CROP  # context box / face crop box


@dataclass
class CropPool:
    """contexts (N, 320, 320, 3) uint8 RGB; sources (N,) int64 index into names (one per avatar or image)."""

    contexts: np.ndarray
    sources: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.contexts)

    @classmethod
    def from_crops(cls, crops: np.ndarray, sources: np.ndarray | None = None, name: str = "crops") -> "CropPool":
        """A pool from face crops (N, 256, 256, 3) uint8 RGB (e.g. made in a benchmark); the context
        around each is its mirror image. sources: (N,) int, default one source per crop."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (CROP, CROP, 3) or crops.dtype != np.uint8:
            raise InvalidArgument(f"crops: expected (N, {CROP}, {CROP}, 3) uint8, got {crops.shape} {crops.dtype}")
        m = (CONTEXT - CROP) // 2
        contexts = np.pad(crops, ((0, 0), (m, m), (m, m), (0, 0)), mode="reflect")
        src = np.arange(len(crops)) if sources is None else np.asarray(sources, np.int64)
        return cls(contexts, src.astype(np.int64), [f"{name}[{i}]" for i in range(int(src.max(initial=-1)) + 1)])


@dataclass(frozen=True)
class Split:
    """Indices of the training and the held-out items; held_out False when nothing could be held out
    (one item only, or fraction 0): then evaluation uses the training items (with other augmentations)."""

    train: np.ndarray
    held: np.ndarray
    held_out: bool


def split(sources: np.ndarray, seed: int, fraction: float, tag: int) -> Split:
    """Hold out whole sources (a seeded choice of round(fraction * sources), at least one, never all)
    when there are two or more; with one source the last items (a video's last frames)."""
    n = len(sources)
    everything = np.arange(n)
    if fraction <= 0 or n < 2:
        return Split(everything, everything, False)
    unique = np.unique(sources)
    if len(unique) >= 2:
        k = min(len(unique) - 1, max(1, round(fraction * len(unique))))
        held_sources = np.random.default_rng([seed, tag]).permutation(unique)[:k]
        held = np.isin(sources, held_sources)
        return Split(everything[~held], everything[held], True)
    k = min(n - 1, max(1, round(fraction * n)))
    return Split(everything[: n - k], everything[n - k:], True)


def avatar_contexts(avatar, limit: int) -> np.ndarray:
    """Context crops of up to `limit` evenly spaced frames of a prepared avatar -> (K, 320, 320, 3) uint8 RGB."""
    layout = crop_layout.layout(avatar.landmarks, avatar.size)
    count = min(limit, avatar.frame_count)
    picks = np.unique(np.linspace(0, avatar.frame_count - 1, count).round().astype(np.int64))
    return np.stack([context_crop(avatar.frames[int(i)], layout.boxes[int(i)]) for i in picks])


def context_crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """frame (H, W, 3) uint8 BGR, face crop box (4,) -> the grown box resized to (320, 320, 3) uint8 RGB."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * GROW / 2, (y1 - y0) * GROW / 2
    gx0, gy0 = int(round(cx - hw)), int(round(cy - hh))
    gx1, gy1 = int(round(cx + hw)), int(round(cy + hh))
    patch = safe_crop(frame, gx0, gy0, gx1 - gx0, gy1 - gy0)
    patch = cv2.resize(patch, (CONTEXT, CONTEXT), interpolation=cv2.INTER_AREA if gx1 - gx0 > CONTEXT
                       else cv2.INTER_LANCZOS4)
    return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB)


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name; InvalidArgument when it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidArgument(f"--images {str(folder)!r} is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def image_context(path: Path) -> np.ndarray:
    """The centre square of an image file, resized to (320, 320, 3) uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UnsupportedMedia(f"--images: {path} is not an image that can be decoded")
    h, w = image.shape[:2]
    side = min(h, w)
    square = image[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    square = cv2.resize(square, (CONTEXT, CONTEXT), interpolation=cv2.INTER_AREA if side > CONTEXT
                        else cv2.INTER_LANCZOS4)
    return cv2.cvtColor(square, cv2.COLOR_BGR2RGB)


def build_crops(avatars: Sequence[str | Path], image_dirs: Sequence[Path], frames_per_avatar: int,
                max_crops: int, progress: Callable[[int, int], None] | None = None) -> CropPool:
    """The pool of `avatars` (files prepared on demand through the avatar cache, or prepared ids) and
    of the images in `image_dirs`, at most `max_crops` items (each source's share cut evenly).

    Raises NoFaceFound / UnsupportedMedia / NotFound naming the input, InvalidArgument when nothing
    usable is given.
    """
    from facecast.avatar.resolve import resolve_avatar

    loaded = [resolve_avatar(ref, progress=progress) for ref in avatars]
    files = [path for folder in image_dirs for path in image_files(folder)]
    wanted = [min(frames_per_avatar, a.frame_count) for a in loaded] + [1] * len(files)
    if not wanted:
        raise InvalidArgument("no training images: give --avatar FILE (a portrait or video; repeatable) "
                              "and/or --images DIR")
    if len(wanted) > max_crops:
        raise InvalidArgument(f"--max-crops {max_crops}: fewer than the {len(wanted)} sources given; raise it")
    total = sum(wanted)
    if total > max_crops:  # cut every source's share by the same factor, at least one item each
        wanted = [max(1, int(w * max_crops / total)) for w in wanted]
    parts, sources, names = [], [], []
    for avatar, k in zip(loaded, wanted):
        parts.append(avatar_contexts(avatar, k))
        names.append(avatar.name)
    for path in files:
        parts.append(image_context(path)[None])
        names.append(path.name)
    for i, part in enumerate(parts):
        sources.append(np.full(len(part), i, np.int64))
    return CropPool(np.concatenate(parts), np.concatenate(sources), names)
