"""Stream the frames of a video file, one at a time, upright, at a capped even size, on a constant
frame grid (media.probe says what the file is and when each frame is shown)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from facecast.errors import UnsupportedMedia
from facecast.media.probe import MediaInfo, VideoStreamInfo, probe as probe_media
from facecast.media.reader import even_size, video_frames

MAX_LONG_SIDE = 1920  # px: frames of longer videos are scaled down to this long side


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds.

    size: (width, height) in px of the frames `frames()` yields (as displayed: rotation applied;
    even, long side capped); fps: frames per second of the constant grid `frames()` yields (a
    variable-rate clip is put on the grid of its fastest rate); frame_count: frames `frames()`
    yields (fewer only for a truncated file); has_audio: the file has an audio stream;
    stream: the probe's description of the video stream.
    """

    path: Path
    size: tuple[int, int]
    fps: float
    frame_count: int
    has_audio: bool
    stream: VideoStreamInfo


def probe(path: str | Path, *, max_long_side: int = MAX_LONG_SIDE) -> VideoInfo:
    """Describe a video (one frame decoded, packets read for their times).

    Raises UnsupportedMedia (missing, empty, an image, audio only, not media) or CorruptMedia
    (no frame decodes), naming the file.
    """
    path = Path(path)
    info = probe_media(path, wanted="a video")
    if info.kind == "image":
        raise UnsupportedMedia(f"{path}: is a still image; this command needs a video (MP4, MOV, WebM, ...)")
    if info.kind != "video":
        raise UnsupportedMedia(f"{path}: has no video stream")
    return video_info(path, info, max_long_side=max_long_side)


def video_info(path: str | Path, info: MediaInfo, *, max_long_side: int = MAX_LONG_SIDE) -> VideoInfo:
    """The VideoInfo of a file the media probe already described as a video (info.kind == "video")."""
    video = info.video
    size = even_size(*video.display_size, max_long_side)
    return VideoInfo(Path(path), size, video.grid_fps, video.grid_count, info.audio is not None, video)


def frames(info: VideoInfo, *, gray_size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield info.frame_count frames of `info.path` in order, each at its own time on the grid.

    Yields (H, W, 3) uint8 BGR at info.size, or with `gray_size` (w, h) an (h, w) uint8
    greyscale frame at that size (cheap analysis passes). A decode error after the first
    frame ends the stream, as a player would stop at a truncated file.
    """
    yield from video_frames(info.path, info.stream, gray_size or info.size,
                            fmt="gray" if gray_size else "bgr24", threads=True)
