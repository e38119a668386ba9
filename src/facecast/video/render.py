"""The video steps around `facecast render`: stabilise the avatar source before preparation,
then post-process the rendered MP4 (temporal blending of the mouth, new background,
re-shake, foot lock), segment by segment.

    add_render_arguments(parser)                   # facecast.video.cli: the render flags
    video = VideoRender.from_args(args)           # None when no video flag is given
    source = video.source(avatar_source)           # the stabilised copy (cached) or the source
    avatar = prepare(source)
    video.attach(avatar)                           # camera path JSON beside the cached avatar
    render_to_file(avatar, speech, video.staging(output), ...)
    video.finish(avatar, video.staging(output), output, speech.audio)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from facecast.avatar import topology as topo
from facecast.errors import InvalidArgument
from facecast.video.composite import Background
from facecast.video.output import open_mp4, write_json
from facecast.video.runner import run_segments
from facecast.video.defaults import DEFAULT_MAX_SECONDS, DEFAULT_OVERLAP, DEFAULT_WINDOW
from facecast.video.segments import plan_segments
from facecast.video.stages import Composite, Footlock, Reshake, Temporal
from facecast.video.stream import frames, probe
from facecast.video.transforms import CameraPath

CAMERA_FILE = "camera_path.json"  # beside the cached avatar
FACE_REGION_GROW = 0.35  # the pasted-back region: face box grown by this share of its size per side
MOUTH_GROW = 0.25  # the temporally blended region: mouth box grown by this share per side
MOTION_CHUNK = 1024  # output frames whose landmark motion is measured at once

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoOptions:
    stabilize: bool = False
    window: int = DEFAULT_WINDOW
    temporal: bool = False
    plate: Path | None = None
    footlock: bool = False
    segments: int = 0
    max_segment_seconds: float = DEFAULT_MAX_SECONDS
    overlap: int = DEFAULT_OVERLAP
    crf: int = 20
    preset: str = "veryfast"

    @property
    def active(self) -> bool:
        return self.stabilize or self.temporal or self.plate is not None or self.footlock


class VideoRender:
    """Runs the video steps for one render."""

    def __init__(self, options: VideoOptions):
        self.options = options
        self._stable = None

    @classmethod
    def from_args(cls, args) -> "VideoRender | None":
        """From `facecast render` arguments; None when no video step was asked for."""
        o = VideoOptions(getattr(args, "stabilize", False), getattr(args, "stabilize_window", DEFAULT_WINDOW),
                         getattr(args, "temporal", False), getattr(args, "plate", None),
                         getattr(args, "footlock", False), getattr(args, "segments", 0),
                         getattr(args, "max_segment_seconds", DEFAULT_MAX_SECONDS),
                         getattr(args, "overlap", DEFAULT_OVERLAP), getattr(args, "crf", 20),
                         getattr(args, "preset", "veryfast"))
        return cls(o) if o.active else None

    def source(self, avatar_source: Path, progress: Progress | None = None) -> Path:
        """The path to prepare: a stabilised copy of a video source (cached), else the source."""
        if self.options.plate is not None:
            Background(self.options.plate, (16, 16))  # fail on a bad background before rendering
        if (self.options.stabilize or self.options.footlock) and _is_still(Path(avatar_source)):
            flag = "--stabilize" if self.options.stabilize else "--footlock"
            raise InvalidArgument(f"{flag}: {avatar_source} is a still image; {flag} needs a video avatar")
        if self.options.footlock:
            from facecast.video.pipeline import require_feet

            require_feet(probe(avatar_source))
        if not self.options.stabilize:
            return Path(avatar_source)
        from facecast.video.stable_source import stabilized_source

        if self.options.window < 1:
            raise InvalidArgument(f"--stabilize-window {self.options.window!r} must be at least 1 frame")
        self._stable = stabilized_source(Path(avatar_source), window=self.options.window, progress=progress)
        return self._stable.video

    def attach(self, avatar) -> None:
        """Save the camera path as JSON beside the cached avatar."""
        if self._stable is not None:
            write_json(Path(avatar.cache_dir) / CAMERA_FILE, json.loads(self._stable.camera_file.read_text()))

    @staticmethod
    def staging(output: Path) -> Path:
        """Where the plain render goes before post-processing (removed by `finish`)."""
        return Path(output).with_name(f".{Path(output).stem}.render.mp4")

    def finish(self, avatar, rendered: Path, output: Path, audio=None, progress: Progress | None = None) -> Path:
        """Post-process `rendered` (frames at the avatar's size) into `output`; removes `rendered`."""
        try:
            info = probe(rendered)
            count = _frame_count(rendered, info)
            stages = self._stages(avatar, info.size, info.fps)
            plan = plan_segments(count, _landmark_motion(avatar, count, info.fps), count=self.options.segments,
                                 max_frames=max(2 * self.options.overlap + 2,
                                                int(self.options.max_segment_seconds * info.fps)),
                                 overlap=self.options.overlap)
            with open_mp4(output, info.size, info.fps, audio, crf=self.options.crf, preset=self.options.preset) as w:
                run_segments(frames(info), plan, stages, w.write, overlap=self.options.overlap, progress=progress)
        finally:
            Path(rendered).unlink(missing_ok=True)
        return Path(output)

    def _stages(self, avatar, size, fps) -> list:
        o, stages = self.options, []
        src = partial(avatar.source_index, output_fps=fps)  # output frame -> the source frame it shows
        if o.temporal:
            stages.append(Temporal(lambda n: mouth_box(avatar, int(src(n)), MOUTH_GROW)))
        if o.plate is not None:
            stages.append(Composite(Background(o.plate, size)))
        if o.stabilize:
            stages.append(_reshake_stage(avatar, src, self._camera(avatar), size,
                                         self._stable.originals() if self._stable and o.plate is None else None))
        if o.footlock:
            stages.append(Footlock(fps))
        return stages


    def _camera(self, avatar) -> CameraPath:
        """The camera path saved beside the cached avatar (or, before `attach`, the cached source's)."""
        beside = Path(avatar.cache_dir) / CAMERA_FILE
        if beside.is_file() or self._stable is None:
            return CameraPath.load(beside)
        return self._stable.camera()


def _reshake_stage(avatar, src, camera: CameraPath, size, originals: np.ndarray | None) -> Reshake:
    if originals is None:
        return Reshake(lambda n: camera.warp(int(src(n)), size))
    return Reshake(lambda n: camera.warp(int(src(n)), size), lambda n: np.asarray(originals[int(src(n))]),
                   lambda n: face_polygon(avatar, int(src(n)), FACE_REGION_GROW))


def mouth_box(avatar, index: int, grow: float) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1) px around the outer lips of source frame `index`, grown per side."""
    pts = avatar.landmarks[index, topo.LIPS_OUTER, :2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    gx, gy = grow * (x1 - x0), grow * (y1 - y0)
    return int(x0 - gx), int(y0 - gy), int(np.ceil(x1 + gx)), int(np.ceil(y1 + gy))


def face_polygon(avatar, index: int, grow: float) -> np.ndarray:
    """(4, 2) float px: the face box of source frame `index`, grown per side."""
    x0, y0, x1, y1 = avatar.boxes[index]
    gx, gy = grow * (x1 - x0), grow * (y1 - y0)
    return np.array([[x0 - gx, y0 - gy], [x1 + gx, y0 - gy], [x1 + gx, y1 + gy], [x0 - gx, y1 + gy]], np.float64)


def _landmark_motion(avatar, count: int, fps: float) -> np.ndarray:
    """(count,) mean landmark movement (px) into each output frame (at `fps`): where to cut segments."""
    motion = np.zeros(count, np.float32)
    for lo in range(1, count, MOTION_CHUNK):  # in chunks: a long render does not gather every frame's mesh at once
        hi = min(count, lo + MOTION_CHUNK)
        src = avatar.source_index(np.arange(lo - 1, hi), fps)
        pts = avatar.landmarks[src, :, :2]
        motion[lo:hi] = np.linalg.norm(np.diff(pts, axis=0), axis=2).mean(axis=1)
    return motion


def _is_still(path: Path) -> bool:
    from facecast.media.reader import IMAGE_MAGIC

    with path.open("rb") as fh:
        return fh.read(16).startswith(IMAGE_MAGIC)


def _frame_count(path: Path, info) -> int:
    from facecast.video.stream import count_frames

    count = count_frames(info)
    if count < 1:
        raise InvalidArgument(f"{path}: the rendered video holds no frames")
    return count
