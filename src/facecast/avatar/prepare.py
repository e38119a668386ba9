"""Avatar preparation: decode the source, find the face mesh on every frame, smooth it
over time (video), and store the result in the content-hashed cache."""

from __future__ import annotations

from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from facecast.avatar.cache import AvatarCache, content_key
from facecast.avatar.masks import frame_masks
from facecast.avatar.model import Avatar
from facecast.config import PrepareSettings
from facecast.errors import CorruptMedia, NoFaceFound, UnsupportedMedia
from facecast.media.probe import probe
from facecast.media.reader import read_visual
from facecast.types import Progress

LANDMARK_SIGMA = 1.0  # frames: temporal smoothing of video meshes (removes tracker jitter)
MIN_FACE_FRACTION = 0.5  # a video avatar needs a face in at least this share of frames


def prepare(source: str | Path, settings: PrepareSettings = PrepareSettings(), *,
            cache: AvatarCache | None = None, force: bool = False,
            progress: Progress | None = None) -> Avatar:
    """Prepare an avatar from a portrait image or short video, or load it from the cache.

    Raises UnsupportedMedia / CorruptMedia for files that are not images or videos and
    NoFaceFound when no face is visible; nothing is cached then.
    """
    cache = cache or AvatarCache()
    path = Path(source)
    if not path.is_file():
        raise UnsupportedMedia(f"{path}: no such file")
    key = content_key(path.read_bytes(), settings.key())
    if not force:
        cached = cache.get(key)  # None also when the entry was damaged (it is rebuilt now)
        if cached is not None:
            return cached
    frames, total, fps = source_frames(path, settings)
    with cache.writer(key) as entry:
        landmarks = track_faces(_kept(frames, entry), path, settings, progress, total=total, still=total == 1)
        boxes = smooth_boxes(landmarks, settings.box_smoothing)
        lower_face, mouth = frame_masks(landmarks)
        return entry.finish(path.name, landmarks, boxes, {"lower_face": lower_face, "mouth": mouth},
                            fps if entry.count > 1 else 0.0)


def source_frames(path: Path, settings: PrepareSettings) -> tuple[Iterable[np.ndarray], int, float]:
    """(frames, expected count, fps) of an avatar source, one (H, W, 3) uint8 BGR frame at a time.

    The file is probed once. A photo is decoded whole (one frame, fps 0.0); a video is streamed
    (at most max_video_seconds) after its first frame decoded, so memory does not grow with its
    length. Raises UnsupportedMedia / CorruptMedia naming the file.
    """
    info = probe(path, wanted="an image or video")
    if info.kind != "video":  # a photo; anything else is refused by read_visual with its message
        return read_visual(path, max_long_side=settings.max_long_side).frames, 1, 0.0
    from facecast.video.stream import frames, video_info

    video = video_info(path, info, max_long_side=settings.max_long_side)
    limit = int(settings.max_video_seconds * video.fps) + 1  # as read_visual
    stream = islice(frames(video), limit)
    first = next(stream, None)
    if first is None:
        raise CorruptMedia(f"{path}: the video stream holds no decodable frame")
    return chain([first], stream), min(limit, video.frame_count) or limit, video.fps


def _kept(frames: Iterable[np.ndarray], entry) -> Iterator[np.ndarray]:
    """Pass frames through, storing each in the cache entry being written."""
    for frame in frames:
        entry.add_frame(frame)
        yield frame


def track_faces(frames: Iterable[np.ndarray], path: Path, settings: PrepareSettings,
                progress: Progress | None = None, *, total: int | None = None,
                still: bool | None = None) -> np.ndarray:
    """Face mesh of every frame. frames: (F, H, W, 3) uint8 BGR, or an iterable of (H, W, 3)
    frames (read once) -> (F, 478, 3) float32 px. total: frame count for progress (default
    len(frames)); still: a photo (default: a single frame).

    Frames where the face is lost are filled from their neighbours; video meshes are
    smoothed over time.
    """
    from facecast.avatar.landmarks import FaceMesher  # mediapipe loads only when a face must be found

    total = len(frames) if total is None else total
    still = total == 1 if still is None else still
    found: list[np.ndarray | None] = []
    previous = None
    with FaceMesher(static=still, min_confidence=settings.min_detection_confidence, face=settings.face) as mesher:
        for i, frame in enumerate(frames):
            repeated = previous is not None and np.array_equal(frame, previous)  # a slow part of a VFR clip
            found.append(found[-1] if repeated else mesher.landmarks(frame))
            previous = frame
            if progress:
                progress(i + 1, max(total, i + 1))
    n = len(found)
    hits = [i for i, pts in enumerate(found) if pts is not None]
    if not hits:
        raise NoFaceFound(f"{path}: no face found" + (" in any frame" if n > 1 else ""))
    if len(hits) < MIN_FACE_FRACTION * n:
        raise NoFaceFound(f"{path}: a face was found in only {len(hits)} of {n} frames")
    filled = _fill_gaps(found, hits)
    if n > 1:
        from scipy.ndimage import gaussian_filter1d

        filled = gaussian_filter1d(filled, LANDMARK_SIGMA, axis=0, mode="nearest")
    return filled.astype(np.float32)


def _fill_gaps(found: list[np.ndarray | None], hits: list[int]) -> np.ndarray:
    """Linear interpolation of missing meshes between the nearest found ones."""
    stack = np.zeros((len(found),) + found[hits[0]].shape, np.float32)
    idx = np.arange(len(found))
    known = np.stack([found[i] for i in hits])
    flat = known.reshape(len(hits), -1)
    for col in range(flat.shape[1]):
        stack.reshape(len(found), -1)[:, col] = np.interp(idx, hits, flat[:, col])
    return stack


def smooth_boxes(landmarks: np.ndarray, smoothing: float) -> np.ndarray:
    """Face boxes (F, 4) from meshes (F, 478, 3), smoothed forward and backward in time.

    smoothing in [0, 1): weight of the previous box in a first-order filter, applied
    both ways so the result has no lag.
    """
    xy = landmarks[:, :, :2]
    boxes = np.concatenate([xy.min(1), xy.max(1)], axis=1)
    if len(boxes) < 2 or smoothing <= 0:
        return boxes
    fwd = boxes.copy()
    for i in range(1, len(fwd)):
        fwd[i] = smoothing * fwd[i - 1] + (1 - smoothing) * boxes[i]
    out = fwd.copy()
    for i in range(len(out) - 2, -1, -1):
        out[i] = smoothing * out[i + 1] + (1 - smoothing) * fwd[i]
    return out.astype(np.float32)
