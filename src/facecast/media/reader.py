"""Decode avatar sources (images and videos) to BGR frames, sniffing the content, not the name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from facecast.errors import CorruptMedia, UnsupportedMedia

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class DecodedVisual:
    """frames: (F, H, W, 3) uint8 BGR; fps 0.0 for a still image."""

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
    """Decode an image or a video file to BGR frames at the output size.

    Raises UnsupportedMedia (not an image or video) or CorruptMedia, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UnsupportedMedia(f"{path}: no such file")
    data = path.read_bytes()
    if not data:
        raise UnsupportedMedia(f"{path}: the file is empty, not an image or video")
    if data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return _read_image(path, data, max_long_side)
    return _read_video(path, max_long_side, max_seconds)


def _read_image(path: Path, data: bytes, max_long_side: int) -> DecodedVisual:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CorruptMedia(f"{path}: looks like an image but cannot be decoded (corrupt or truncated)")
    img = _to_bgr(img)
    size = even_size(img.shape[1], img.shape[0], max_long_side)
    return DecodedVisual(fit_frame(img, size)[None], 0.0)


def _to_bgr(img: np.ndarray) -> np.ndarray:
    """Greyscale, BGR or BGRA (alpha composited over white) -> (H, W, 3) uint8 BGR."""
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(img.max())))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        rgb = img[:, :, :3].astype(np.float32)
        return (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return img[:, :, :3].copy()


def _read_video(path: Path, max_long_side: int, max_seconds: float) -> DecodedVisual:
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:
        raise UnsupportedMedia(f"{path}: not an image or video facecast can read ({exc})") from None
    except av.error.FFmpegError as exc:
        raise UnsupportedMedia(f"{path}: not an image or video facecast can read ({exc})") from None
    with container:
        if not _is_video_container(container):
            raise UnsupportedMedia(f"{path}: not an image or video facecast can read "
                                   f"(detected {container.format.name!r})")
        if not container.streams.video:
            raise UnsupportedMedia(f"{path}: has no video stream and is not an image")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = _decode_frames(path, container, stream, max_long_side, int(max_seconds * fps) + 1)
    if not frames:
        raise CorruptMedia(f"{path}: the video stream holds no decodable frame")
    return DecodedVisual(np.stack(frames), fps if len(frames) > 1 else 0.0)


VIDEO_FORMATS = ("mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv", "mpeg", "ogg", "gif", "h264", "hevc")


def _is_video_container(container) -> bool:
    """True for real video containers (FFmpeg also 'opens' text files as ANSI art)."""
    names = container.format.name.split(",")
    return any(name in VIDEO_FORMATS for name in names)


def _decode_frames(path, container, stream, max_long_side: int, limit: int) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    size = None
    try:
        for frame in container.decode(stream):
            if size is None:
                size = even_size(frame.width, frame.height, max_long_side)
            img = frame.to_ndarray(format="bgr24", width=size[0], height=size[1])
            frames.append(img)
            if len(frames) >= limit:
                break
    except av.error.FFmpegError as exc:
        if not frames:
            raise CorruptMedia(f"{path}: cannot decode the video ({exc})") from None
    return frames
