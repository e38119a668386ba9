"""Decode avatar sources (images and videos) to upright BGR frames; media.probe says what a file is."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

from facecast.errors import CorruptMedia, UnsupportedMedia
from facecast.media.probe import ImageInfo, VideoStreamInfo, open_container, probe


@dataclass(frozen=True)
class DecodedVisual:
    """frames: (F, H, W, 3) uint8 BGR, upright; fps 0.0 for a still image, else the rate of the
    constant grid the video's frames lie on (frame i shown from i / fps s)."""

    frames: np.ndarray
    fps: float


def even_size(width: int, height: int, max_long_side: int) -> tuple[int, int]:
    """Output (width, height): long side capped, both even, aspect kept."""
    scale = min(1.0, max_long_side / max(width, height))
    w = max(2, int(round(width * scale)) // 2 * 2)
    h = max(2, int(round(height * scale)) // 2 * 2)
    return w, h


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (area filter) or, for a one-pixel trim, crop `frame` (H, W, 3) to `size` (w, h)."""
    h, w = frame.shape[:2]
    tw, th = size
    if (w, h) == (tw, th):
        return frame
    if w - tw <= 1 and h - th <= 1:
        return np.ascontiguousarray(frame[:th, :tw])
    return cv2.resize(frame, (tw, th), interpolation=cv2.INTER_AREA)


def read_visual(path: str | Path, *, max_long_side: int = 1024, max_seconds: float = 30.0) -> DecodedVisual:
    """Decode an image or a video file to BGR frames at the output size, upright (EXIF orientation,
    display-matrix rotation) and, for a video, on a constant grid of its frame times.

    Raises UnsupportedMedia (not an image or video) or CorruptMedia, naming the file.
    """
    path = Path(path)
    info = probe(path, wanted="an image or video")
    if info.kind == "image":
        return _read_image(path, info.image, max_long_side)
    if info.kind != "video":
        raise UnsupportedMedia(f"{path}: not an image or video: it is {info.format.upper()} audio")
    video = info.video
    limit = int(max_seconds * video.grid_fps) + 1
    size = even_size(*video.display_size, max_long_side)
    frames = list(itertools.islice(video_frames(path, video, size), limit))
    if not frames:
        raise CorruptMedia(f"{path}: the video stream holds no decodable frame")
    return DecodedVisual(np.stack(frames), video.grid_fps if len(frames) > 1 else 0.0)


def read_image(data: bytes, label: str, info: ImageInfo | None = None) -> np.ndarray:
    """Image bytes -> (H, W, 3) uint8 BGR, upright (EXIF orientation applied), any bit depth
    scaled to 8 bits, alpha composited over white. Raises CorruptMedia."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CorruptMedia(f"{label}: looks like an image but cannot be decoded (corrupt or truncated)")
    if info is None:
        info = probe(data, label=label, wanted="an image").image
        if info is None:
            raise UnsupportedMedia(f"{label}: not an image")
    orientation = info.orientation
    return np.ascontiguousarray(orient(_to_bgr(img), orientation))


def _read_image(path: Path, info: ImageInfo, max_long_side: int) -> DecodedVisual:
    img = read_image(path.read_bytes(), str(path), info)
    size = even_size(img.shape[1], img.shape[0], max_long_side)
    return DecodedVisual(fit_frame(img, size)[None], 0.0)


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF Orientation (1..8) to img (H, W, ...): the picture as it should be shown."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(img, -1)
    if orientation == 7:
        return img[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(img, 1)
    return img


def rotate(img: np.ndarray, degrees: int) -> np.ndarray:
    """Turn img (H, W, ...) counter-clockwise by 0, 90, 180 or 270 degrees (a display matrix)."""
    return np.ascontiguousarray(np.rot90(img, degrees // 90 % 4)) if degrees % 360 else img


def _to_bgr(img: np.ndarray) -> np.ndarray:
    """Greyscale, BGR or BGRA of any depth (alpha composited over white) -> (H, W, 3) uint8 BGR.

    16-bit samples are scaled by 255/65535 and float samples (0..1) by 255: by the bit depth,
    never by the image's own brightest pixel, so a dim picture stays dim.
    """
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        rgb = img[:, :, :3].astype(np.float32)
        return (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return img[:, :, :3].copy()


def video_frames(path: Path, video: VideoStreamInfo, size: tuple[int, int], *, fmt: str = "bgr24",
                 threads: bool = False) -> Iterator[np.ndarray]:
    """Decode the video at `path` upright, scaled to `size` (w, h, as displayed), one frame per
    slot of its constant grid (video.grid_fps, video.grid_count slots): each decoded frame is shown
    from its own timestamp on, so a variable-rate clip keeps its timing.

    Yields (h, w, 3) uint8 BGR (fmt "bgr24") or (h, w) uint8 ("gray"). A decode error after the
    first frame ends the stream (as a player stops at a truncated file).
    """
    stored = (size[1], size[0]) if video.rotation in (90, 270) else size
    fps, count = video.grid_fps, video.grid_count
    next_slot, pending, shown, start = 0, None, False, None
    with open_container(path) as container:
        stream = container.streams[video.index]
        if threads:
            stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / fps
                start = t if start is None else start
                slot = int(round((t - start) * fps))
                while pending is not None and next_slot < min(slot, count):
                    yield pending.copy() if shown else pending  # a repeated frame is a copy of its own
                    shown, next_slot = True, next_slot + 1
                if next_slot >= count:
                    return
                pending = rotate(frame.to_ndarray(format=fmt, width=stored[0], height=stored[1]), video.rotation)
                shown = False
        except av.error.FFmpegError as exc:
            if pending is None:
                raise CorruptMedia(f"{path}: cannot decode the video ({exc.strerror or exc})") from None
            count = next_slot + 1
    while pending is not None and next_slot < count:
        yield pending.copy() if shown else pending
        shown, next_slot = True, next_slot + 1
