"""Offline animation: a driver video animates an avatar, written to MP4 with the driver's audio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from facecast.errors import CorruptMedia, EmptyAudio, InvalidArgument, NoFaceFound, UnsupportedMedia
from facecast.media.probe import open_container, probe
from facecast.media.reader import rotate
from facecast.portrait.animator import PortraitAnimator
from facecast.portrait.driver import FilterSettings
from facecast.portrait.source import StillAvatar
from facecast.types import Progress

MAX_DRIVER_SECONDS = 600.0  # s: longer drivers are cut here


@dataclass(frozen=True)
class AnimateReport:
    """What animate_file wrote: output frames (on the fps grid), driver frames decoded, driver
    frames that showed a face, fps, audio or not."""

    path: Path
    frames: int
    driver_frames: int
    face_frames: int
    fps: int
    has_audio: bool


@dataclass(frozen=True)
class DriverInfo:
    """fps: frames per second of the output grid (a variable-rate driver's frames are put on it
    by their timestamps); frames: frames in the file; has_audio; rotation: degrees
    counter-clockwise that turn the stored frames upright (the display matrix)."""

    fps: float
    frames: int
    has_audio: bool
    rotation: int = 0


def probe_driver(path: Path) -> DriverInfo:
    """Check that `path` is a video (media.probe). Raises InvalidArgument, UnsupportedMedia, CorruptMedia."""
    if not path.is_file():
        raise InvalidArgument(f"--driver {str(path)!r}: no such file")
    info = probe(path, wanted="a video")
    if info.kind != "video":
        raise UnsupportedMedia(f"{path}: not a video: it is {'a still image' if info.image else 'audio only'}")
    video = info.video
    return DriverInfo(video.grid_fps, video.frame_count, info.audio is not None, video.rotation)


def driver_frames(path: Path, info: DriverInfo) -> Iterator[tuple[np.ndarray, float]]:
    """Decode (frame (h, w, 3) uint8 BGR upright, time in s) pairs; stops at a decoding error after
    the first frame (a truncated file keeps what decoded) and raises CorruptMedia before it."""
    count = 0
    limit = int(MAX_DRIVER_SECONDS * info.fps)
    try:
        with open_container(path) as container:
            for frame in container.decode(container.streams.video[0]):
                t = float(frame.time) if frame.time is not None else count / info.fps
                yield rotate(frame.to_ndarray(format="bgr24"), info.rotation), t
                count += 1
                if count >= limit:
                    return
    except av.error.FFmpegError as exc:
        if count == 0:
            raise CorruptMedia(f"{path}: cannot decode the video ({exc})") from None


def driver_audio(path: Path, info: DriverInfo):
    """The driver's soundtrack as Audio, or None when it has none (or only silence-free nothing)."""
    if not info.has_audio:
        return None
    from facecast.audio.decode import load_audio

    try:
        return load_audio(path)
    except EmptyAudio:
        return None


class FrameGrid:
    """Writes frames of a variable-rate driver on a constant `fps` grid starting at time 0 (where
    the audio starts): a frame at time t fills slot round(t * fps); skipped slots repeat the
    previous frame (the first frame fills any slots before it), so audio stays in sync."""

    def __init__(self, writer, fps: int):
        self.writer, self.fps = writer, fps
        self._last: np.ndarray | None = None

    def put(self, image: np.ndarray, t_s: float) -> None:
        """image: (H, W, 3) uint8 BGR shown from `t_s` seconds on."""
        slot = max(0, int(round(t_s * self.fps)))
        if slot < self.writer.frames_written:
            return  # a repeated timestamp: the slot is already taken
        filler = image if self._last is None else self._last
        while self.writer.frames_written < slot:
            self.writer.write(filler)
        self.writer.write(image)
        self._last = image


def animate_file(avatar: StillAvatar, driver: str | Path, out: str | Path, *, mode: str = "relative",
                 crf: int = 20, preset: str = "veryfast", filters: FilterSettings = FilterSettings(),
                 progress: Progress | None = None) -> AnimateReport:
    """Animate `avatar` with the face in the `driver` video; write an MP4 (H.264, plus AAC when
    the driver has audio) to `out`. The file appears only when complete.

    Raises NoFaceFound when no driver frame shows a face (nothing is written).
    """
    from facecast.media.writer import Mp4Writer

    driver = Path(driver)
    info = probe_driver(driver)
    fps = max(1, int(round(info.fps)))
    audio = driver_audio(driver, info)
    total = info.frames or 0
    faces = decoded = 0
    size = (avatar.frame.shape[1], avatar.frame.shape[0])
    with PortraitAnimator(avatar, mode=mode, filters=filters) as animator, \
            Mp4Writer(out, size, fps, audio, crf=crf, preset=preset) as writer:
        grid = FrameGrid(writer, fps)
        for i, (frame, t) in enumerate(driver_frames(driver, info)):
            result = animator.animate(frame, t)
            faces += result.face_found
            decoded += 1
            grid.put(result.image, t)
            if progress:
                progress(i + 1, max(total, i + 1))
        if faces == 0:
            raise NoFaceFound(f"{driver}: no face found in any of its {decoded} frames")
        written = writer.frames_written
    return AnimateReport(Path(out), written, decoded, faces, fps, audio is not None)
