"""The video steps around `facecast render`: stabilise the avatar source before preparation,
then post-process the rendered MP4 (temporal blending of the mouth, new background,
re-shake, foot lock), segment by segment.

    add_render_arguments(parser)                   # facecast.video.cli: the render flags
    video = VideoRender.from_args(args)           # None when no video flag is given (else VideoRender(job))
    source = video.source(avatar_source)           # the stabilised copy (cached) or the source
    avatar = prepare(source)
    video.attach(avatar)                           # camera path JSON beside the cached avatar
    render_to_file(avatar, speech, video.staging(output), ...)
    video.finish(avatar, video.staging(output), output, speech.audio)
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

from facecast.avatar import topology as topo
from facecast.errors import InvalidArgument
from facecast.types import Progress
from facecast.video.composite import Background
from facecast.video.output import open_mp4, write_json
from facecast.video.pipeline import VideoJob, require_feet
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


class VideoRender:
    """Runs the video steps of `job` (its `background` is the plate) for one render; the result
    is encoded at `crf` / `preset`."""

    def __init__(self, job: VideoJob, crf: int = 20, preset: str = "veryfast"):
        self.job, self.crf, self.preset = job, crf, preset
        self._stable = None

    @classmethod
    def from_args(cls, args) -> "VideoRender | None":
        """From `facecast render` arguments; None when no video step was asked for."""
        job = VideoJob(stabilize=getattr(args, "stabilize", False),
                       window=getattr(args, "stabilize_window", DEFAULT_WINDOW),
                       temporal=getattr(args, "temporal", False), background=getattr(args, "plate", None),
                       footlock=getattr(args, "footlock", False), segments=getattr(args, "segments", 0),
                       max_segment_seconds=getattr(args, "max_segment_seconds", DEFAULT_MAX_SECONDS),
                       overlap=getattr(args, "overlap", DEFAULT_OVERLAP))
        return cls(job, getattr(args, "crf", 20), getattr(args, "preset", "veryfast")) if job.active else None

    def source(self, avatar_source: Path, progress: Progress | None = None) -> Path:
        """The path to prepare: a stabilised copy of a video source (cached), else the source."""
        if self.job.background is not None:
            Background(self.job.background, (16, 16))  # fail on a bad background before rendering
        if (self.job.stabilize or self.job.footlock) and _is_still(Path(avatar_source)):
            flag = "--stabilize" if self.job.stabilize else "--footlock"
            raise InvalidArgument(f"{flag}: {avatar_source} is a still image; {flag} needs a video avatar")
        if self.job.footlock:
            require_feet(probe(avatar_source))
        if not self.job.stabilize:
            return Path(avatar_source)
        from facecast.video.stable_source import stabilized_source

        if self.job.window < 1:
            raise InvalidArgument(f"--stabilize-window {self.job.window!r} must be at least 1 frame")
        self._stable = stabilized_source(Path(avatar_source), window=self.job.window,
                                         ignore_person=self.job.ignore_person, progress=progress)
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
            plan = plan_segments(count, _landmark_motion(avatar, count, info.fps), count=self.job.segments,
                                 max_frames=max(2 * self.job.overlap + 2,
                                                int(self.job.max_segment_seconds * info.fps)),
                                 overlap=self.job.overlap)
            with open_mp4(output, info.size, info.fps, audio, crf=self.crf, preset=self.preset) as w:
                run_segments(frames(info), plan, stages, w.write, overlap=self.job.overlap, progress=progress)
        finally:
            Path(rendered).unlink(missing_ok=True)
        return Path(output)

    def _stages(self, avatar, size, fps) -> list:
        o, stages = self.job, []
        src = partial(avatar.source_index, output_fps=fps)  # output frame -> the source frame it shows
        if o.temporal:
            stages.append(Temporal(lambda n: mouth_box(avatar, int(src(n)), MOUTH_GROW)))
        if o.background is not None:
            stages.append(Composite(Background(o.background, size)))
        if o.stabilize:
            stages.append(_reshake_stage(avatar, src, self._camera(avatar), size,
                                         self._stable.originals() if self._stable and o.background is None else None))
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
    from facecast.media.probe import probe as probe_media

    return probe_media(path, wanted="an image or video").kind == "image"


def _frame_count(path: Path, info) -> int:
    count = info.frame_count
    if count < 1:
        raise InvalidArgument(f"{path}: the rendered video holds no frames")
    return count
