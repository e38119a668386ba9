"""Avatar preparation: decode the source, find the face mesh on every frame, smooth it
over time (video), and store the result in the content-hashed cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecast.avatar.cache import AvatarCache, content_key
from facecast.avatar.masks import frame_masks
from facecast.avatar.model import Avatar
from facecast.config import PrepareSettings
from facecast.errors import NoFaceFound, UnsupportedMedia
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
    if not force and cache.has(key):
        return cache.load(key)
    visual = read_visual(path, max_long_side=settings.max_long_side, max_seconds=settings.max_video_seconds)
    landmarks = track_faces(visual.frames, path, settings, progress)
    boxes = smooth_boxes(landmarks, settings.box_smoothing)
    lower_face, mouth = frame_masks(landmarks)
    return cache.store(key, path.name, visual.frames, landmarks, boxes,
                       {"lower_face": lower_face, "mouth": mouth}, visual.fps)


def track_faces(frames: np.ndarray, path: Path, settings: PrepareSettings,
                progress: Progress | None = None) -> np.ndarray:
    """Face mesh of every frame. frames: (F, H, W, 3) uint8 BGR -> (F, 478, 3) float32 px.

    Frames where the face is lost are filled from their neighbours; video meshes are
    smoothed over time.
    """
    from facecast.avatar.landmarks import FaceMesher  # mediapipe loads only when a face must be found

    n = frames.shape[0]
    found: list[np.ndarray | None] = []
    with FaceMesher(static=n == 1, min_confidence=settings.min_detection_confidence, face=settings.face) as mesher:
        for i, frame in enumerate(frames):
            repeated = i > 0 and np.array_equal(frame, frames[i - 1])  # a slow part of a variable-rate clip
            found.append(found[-1] if repeated else mesher.landmarks(frame))
            if progress:
                progress(i + 1, n)
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
