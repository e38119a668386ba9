"""Stream the frames of a video file with PyAV, one at a time, at a capped even size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from facecast.errors import CorruptMedia, UnsupportedMedia
from facecast.media.reader import IMAGE_MAGIC, even_size

MAX_LONG_SIDE = 1920  # px: frames of longer videos are scaled down to this long side


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, read from its container and first frame.

    size: (width, height) in px of the frames `frames()` yields (even, long side capped)
    fps: frames per second; frame_count: number of frames the container announces
    (0 when it does not say); has_audio: the file has an audio stream.
    """

    path: Path
    size: tuple[int, int]
    fps: float
    frame_count: int
    has_audio: bool


def probe(path: str | Path, *, max_long_side: int = MAX_LONG_SIDE) -> VideoInfo:
    """Open a video, decode its first frame, and describe it.

    Raises UnsupportedMedia (missing, empty, an image, no video stream) or CorruptMedia
    (no frame decodes), naming the file.
    """
    path = Path(path)
    _check_is_video_file(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        first = _first_frame(path, container, stream)
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        size = even_size(first.width, first.height, max_long_side)
        return VideoInfo(path, size, fps, int(stream.frames or 0), bool(container.streams.audio))


def frames(info: VideoInfo, *, gray_size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield every frame of `info.path` in order.

    Yields (H, W, 3) uint8 BGR at info.size, or with `gray_size` (w, h) an (h, w) uint8
    greyscale frame at that size (cheap analysis passes). A decode error after the first
    frame ends the stream, as a player would stop at a truncated file.
    """
    width, height = gray_size or info.size
    fmt = "gray" if gray_size else "bgr24"
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=fmt, width=width, height=height)
        except av.error.FFmpegError:
            return


def _check_is_video_file(path: Path) -> None:
    if not path.is_file():
        raise UnsupportedMedia(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.read(16)
    if not head:
        raise UnsupportedMedia(f"{path}: the file is empty, not a video")
    if head.startswith(IMAGE_MAGIC):
        raise UnsupportedMedia(f"{path}: is a still image; this command needs a video (MP4, MOV, WebM, ...)")


def _open(path: Path):
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise UnsupportedMedia(f"{path}: not a video facecast can read ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise UnsupportedMedia(f"{path}: has no video stream")
    return container


def _first_frame(path: Path, container, stream) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"{path}: the video cannot be decoded ({exc.strerror or exc})") from None
    raise CorruptMedia(f"{path}: the video stream holds no decodable frame")


def count_frames(info: VideoInfo) -> int:
    """Number of video packets in the file (what the container announces when it does)."""
    if info.frame_count > 0:
        return info.frame_count
    with _open(info.path) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError:
            return 0
