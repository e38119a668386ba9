"""Process a video file: analysis pass, segment plan, per-segment stages, atomic MP4 out.

This is what `facecast video stabilize|segments|footlock|composite` run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from facecast.errors import NoFaceFound
from facecast.types import Progress
from facecast.video.analysis import Analysis, analyse
from facecast.video.composite import Background
from facecast.video.footlock import FootlockSettings
from facecast.video.output import check_output, open_mp4, soundtrack
from facecast.video.runner import run_segments
from facecast.video.defaults import DEFAULT_MAX_SECONDS, DEFAULT_OVERLAP
from facecast.video.segments import Segment, plan_segments
from facecast.video.stabilize import DEFAULT_WINDOW, camera_path
from facecast.video.stages import Composite, Footlock, Stabilize, Temporal
from facecast.video.stream import frames, probe
from facecast.video.temporal import Box, TemporalSettings
from facecast.video.transforms import CameraPath


@dataclass(frozen=True)
class VideoJob:
    """What to do to a video. Stages run in this order: stabilise, temporal, composite, foot lock.

    The one set of video-step options: `facecast video ...` runs it on a file (run_job), `facecast
    render` and POST /generate around a render (facecast.video.render.VideoRender)."""

    stabilize: bool = False
    window: int = DEFAULT_WINDOW
    ignore_person: bool = True  # track camera motion on the background only
    transforms: Path | None = None  # where to save the camera path (JSON) when stabilising
    temporal: bool = False
    temporal_box: Box | None = None  # region to keep consistent; None: the whole frame
    temporal_settings: TemporalSettings = field(default_factory=TemporalSettings)
    background: Path | None = None
    footlock: bool = False
    footlock_settings: FootlockSettings = field(default_factory=FootlockSettings)
    segments: int = 0  # 0: as many as max_segment_seconds needs
    max_segment_seconds: float = DEFAULT_MAX_SECONDS
    overlap: int = DEFAULT_OVERLAP

    @property
    def active(self) -> bool:
        """Whether any step is asked for."""
        return self.stabilize or self.temporal or self.background is not None or self.footlock


@dataclass
class JobReport:
    """What a run did: frames written, the segment plan, seconds spent, and per stage facts."""

    output: Path
    frames: int
    fps: float
    plan: list[Segment]
    seconds: float
    camera: CameraPath | None = None
    contact_frames: int = 0


def max_segment_frames(job: VideoJob, fps: float) -> int:
    """The longest segment a job allows, in frames."""
    return max(2 * job.overlap + 2, int(round(job.max_segment_seconds * fps)))


def plan_for(analysis: Analysis, job: VideoJob) -> list[Segment]:
    """Segment plan of an analysed video for a job."""
    max_frames = max_segment_frames(job, analysis.info.fps)
    return plan_segments(analysis.frame_count, analysis.change, count=job.segments,
                         max_frames=max_frames, overlap=job.overlap)


def run_job(source: Path, output: Path, job: VideoJob, *, progress: Progress | None = None,
            analysis_progress: Progress | None = None) -> JobReport:
    """Run `job` on the video `source`, writing `output` (MP4, atomically, with the source's audio)."""
    start = time.perf_counter()
    check_output(output)
    info = probe(source)
    analysis = analyse(info, track_camera=job.stabilize, ignore_person=job.ignore_person and job.stabilize,
                       progress=analysis_progress)
    camera = camera_path(analysis.steps, info.size, info.fps, job.window) if job.stabilize else None
    plan = plan_for(analysis, job)
    if job.footlock:
        require_feet(info)
    stages = _stages(job, info, camera)
    try:
        with open_mp4(output, info.size, info.fps, soundtrack(info.path) if info.has_audio else None) as writer:
            reserve = min(max_segment_frames(job, info.fps), analysis.frame_count)
            written = run_segments(frames(info), plan, stages, writer.write, overlap=job.overlap, reserve=reserve,
                                   progress=progress)
            _check_people(stages, info.path)
    finally:
        for stage in stages:
            getattr(stage, "close", lambda: None)()
    if camera is not None and job.transforms is not None:
        camera.save(job.transforms)
    contacts = sum(getattr(s, "contact_frames", 0) for s in stages)
    return JobReport(output, written, info.fps, plan, time.perf_counter() - start, camera, contacts)


def _stages(job: VideoJob, info, camera: CameraPath | None) -> list:
    stages: list = []
    if camera is not None:
        stages.append(Stabilize(camera.warps))
    if job.temporal:
        stages.append(Temporal(lambda n, box=job.temporal_box: box, job.temporal_settings))
    if job.background is not None:
        stages.append(Composite(Background(job.background, info.size)))
    if job.footlock:
        stages.append(Footlock(info.fps, job.footlock_settings))
    return stages


def _check_people(stages: list, path: Path) -> None:
    """Raise (so the writer drops its file) when a stage needed a person or feet and saw none."""
    for stage in stages:
        if isinstance(stage, Composite) and not stage.person_seen:
            raise NoFaceFound(f"{path}: no person found in any frame (selfie segmentation); "
                              "nothing to put over the new background")


def require_feet(info, samples: int = 8) -> None:
    """Fail fast, before any output, when sampled frames show no person or no feet (pose)."""
    from facecast.video.plate import sample_indices
    from facecast.video.pose import PoseTracker
    wanted = set(sample_indices(max(1, info.frame_count), samples).tolist())
    picked = [f for i, f in enumerate(frames(info)) if i in wanted]
    with PoseTracker(static=True) as tracker:
        tracks = tracker.track(picked)
    if not tracks.person.any():
        raise NoFaceFound(f"{info.path}: no person found (mediapipe pose on {len(picked)} sampled frames); "
                          "foot locking needs a full-body video")
    if not tracks.feet_seen:
        raise NoFaceFound(f"{info.path}: a person was found but no ankles, heels or toes are visible "
                          f"({len(picked)} sampled frames); foot locking needs the feet in view")
