"""Stabilised copies of video avatar sources, cached by content.

Layout: <cache>/video/<key>/{stabilized.mp4, frames.jpgs, frames.index.npy, camera_path.json,
meta.json}. stabilized.mp4 is what the avatar is prepared from; the frame store (JPEG per
frame, facecast.avatar.frame_store, decoded on demand at render time) holds the original
frames at the same size, so re-shaking can paste the generated region back into untouched
original pixels. The entry is built in a temporary folder and renamed into place, so an
interrupted run leaves nothing half-written; entries count towards the avatar cache's size
limit and are evicted with it (facecast.avatar.cache); a damaged entry is built again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from facecast.avatar.cache import enforce_limit, sweep_stale, touch
from facecast.avatar.frame_store import FrameStore, FrameWriter
from facecast.config import PrepareSettings, cache_dir
from facecast.files import atomic_dir
from facecast.types import Progress
from facecast.video.analysis import analyse
from facecast.video.output import open_mp4
from facecast.video.runner import run_segments
from facecast.video.segments import plan_segments
from facecast.video.stabilize import camera_path
from facecast.video.stages import Stabilize
from facecast.video.stream import frames, probe
from facecast.video.transforms import CameraPath

VERSION = 2  # bump when the stabilised output changes (2: originals as JPEG)
CHUNK_FRAMES = 64  # frames per batch while warping (stabilising keeps no state between frames)


@dataclass(frozen=True)
class StableSource:
    """A cached stabilised source: the video to prepare, the camera path, the original frames."""

    folder: Path

    @property
    def video(self) -> Path:
        return self.folder / "stabilized.mp4"

    @property
    def camera_file(self) -> Path:
        return self.folder / "camera_path.json"

    def camera(self) -> CameraPath:
        return CameraPath.load(self.camera_file)

    def originals(self) -> FrameStore:
        """(F, H, W, 3) uint8 BGR original frames, read-only, decoded on demand."""
        meta = json.loads((self.folder / "meta.json").read_text())
        return FrameStore(self.folder, int(meta["frames"]))

    def check(self) -> None:
        """Raise (ValueError, OSError, KeyError) when the entry is incomplete or damaged."""
        self.originals()
        self.camera()
        if not self.video.is_file() or self.video.stat().st_size == 0:
            raise OSError("stabilized.mp4 is missing")


def stabilized_source(source: Path, *, window: int, ignore_person: bool = True,
                      settings: PrepareSettings = PrepareSettings(), progress: Progress | None = None) -> StableSource:
    """Stabilise a video avatar source at the size and length avatar preparation will use,
    or find it in the cache."""
    source = Path(source)
    info = probe(source, max_long_side=settings.max_long_side)
    key = _key(source, {"window": window, "ignore_person": ignore_person, "max_long_side": settings.max_long_side,
                        "max_seconds": settings.max_video_seconds, "version": VERSION})
    sweep_stale(cache_dir())
    folder = cache_dir() / "video" / key
    if (folder / "meta.json").is_file():
        try:
            StableSource(folder).check()
            touch(folder)
            return StableSource(folder)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # damaged: built again below (atomic_dir replaces it)
    with atomic_dir(folder) as tmp:
        limit = int(settings.max_video_seconds * info.fps) + 1  # as many frames as read_visual keeps
        analysis = analyse(info, ignore_person=ignore_person, max_frames=limit, progress=progress)
        camera = camera_path(analysis.steps, info.size, info.fps, window)
        kept = _write(info, camera, analysis.frame_count, tmp)
        (tmp / "meta.json").write_text(json.dumps({"source": source.name, "frames": kept}))
    enforce_limit(cache_dir(), keep=folder)
    return StableSource(folder)


def _write(info, camera: CameraPath, count: int, folder: Path) -> int:
    """stabilized.mp4, the original frames (JPEG) and camera_path.json of the first `count`
    frames; returns how many original frames were stored."""
    originals = FrameWriter(folder)
    try:
        source = _keep_originals(frames(info), originals, count)
        plan = plan_segments(count, None, max_frames=CHUNK_FRAMES, overlap=0)
        with open_mp4(folder / "stabilized.mp4", info.size, info.fps, crf=14) as writer:
            run_segments(source, plan, [Stabilize(camera.warps)], writer.write, overlap=0)
    except BaseException:
        originals.abort()
        raise
    originals.close()
    camera.save(folder / "camera_path.json")
    return originals.count


def _keep_originals(source, originals: FrameWriter, count: int):
    """Pass frames through, storing the first `count` in `originals`."""
    for i, frame in enumerate(source):
        if i >= count:
            return
        originals.add(frame)
        yield frame


def _key(source: Path, settings: dict) -> str:
    h = hashlib.sha256()
    with source.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:24]
