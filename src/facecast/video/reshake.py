"""Re-shake a whole video: put frames made on stabilised footage back on the original camera
path saved by `facecast video stabilize` (the transforms JSON)."""

from __future__ import annotations

import time
from pathlib import Path

from facecast.errors import InvalidArgument
from facecast.types import Progress
from facecast.video.output import check_output, open_mp4, soundtrack
from facecast.video.runner import run_segments
from facecast.video.segments import plan_segments
from facecast.video.stages import Reshake
from facecast.video.stream import frames, probe
from facecast.video.transforms import CameraPath

FRAME_MAPS = ("pingpong", "loop", "clamp")
CHUNK_FRAMES = 64  # frames per batch (re-shaking keeps no state)


def source_frame(number: int, count: int, how: str = "pingpong") -> int:
    """Which of `count` stabilised source frames output frame `number` was made from:
    "pingpong" (forward then backward, as facecast loops video avatars), "loop", or "clamp"."""
    if count == 1:
        return 0
    if how == "loop":
        return number % count
    if how == "clamp":
        return min(number, count - 1)
    period = 2 * count - 2
    phase = number % period
    return phase if phase < count else period - phase


def reshake_video(source: Path, transforms: Path, output: Path, *, frame_map: str = "pingpong",
                  progress: Progress | None = None) -> tuple[int, float]:
    """Re-apply a saved camera path to `source`; returns (frames written, seconds)."""
    if frame_map not in FRAME_MAPS:
        raise InvalidArgument(f"--frame-map {frame_map!r}: choose one of {', '.join(FRAME_MAPS)}")
    start = time.perf_counter()
    check_output(output)
    path = CameraPath.load(transforms)
    info = probe(source)
    count = info.frame_count
    stage = Reshake(lambda n: path.warp(source_frame(int(n), len(path.warps), frame_map), info.size))
    plan = plan_segments(max(1, count), None, max_frames=CHUNK_FRAMES, overlap=0)
    with open_mp4(output, info.size, info.fps, soundtrack(info.path) if info.has_audio else None) as writer:
        written = run_segments(frames(info), plan, [stage], writer.write, overlap=0, progress=progress)
    return written, time.perf_counter() - start

