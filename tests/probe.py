"""Test helpers: read back what facecast wrote, and measure mouth opening with the face mesh."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from facecast.avatar import topology as topo
from facecast.avatar.landmarks import FaceMesher


@dataclass
class Probe:
    video_codec: str
    audio_codec: str | None
    frames: int
    fps: float
    video_duration: float
    audio_duration: float | None
    video_start: float
    audio_start: float | None
    size: tuple[int, int]


def probe(path: Path) -> Probe:
    """Decode an MP4 fully and report its streams."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = sum(1 for _ in c.decode(v))
        vdur = float(v.duration * v.time_base)
        adur = float(a.duration * a.time_base) if a is not None else None
        return Probe(v.codec_context.name, a.codec_context.name if a else None, frames,
                     float(v.average_rate), vdur, adur, float(v.start_time * v.time_base),
                     float(a.start_time * a.time_base) if a is not None else None,
                     (v.codec_context.width, v.codec_context.height))


def decode_frames(path: Path) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR frames of a video."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="bgr24") for f in c.decode(video=0)])


def mouth_openings(frames: np.ndarray) -> np.ndarray:
    """Inner-lip gap / outer eye-corner distance per frame, (N,) float (nan where no face)."""
    out = np.full(len(frames), np.nan)
    with FaceMesher(static=True) as mesher:  # tracking mode lags on synthetic mouths
        for i, frame in enumerate(frames):
            pts = mesher.landmarks(frame)
            if pts is None:
                continue
            gap = np.linalg.norm(pts[topo.INNER_LIP_CENTER[1], :2] - pts[topo.INNER_LIP_CENTER[0], :2])
            eyes = np.linalg.norm(pts[topo.EYE_OUTER_CORNERS[1], :2] - pts[topo.EYE_OUTER_CORNERS[0], :2])
            out[i] = gap / eyes
    return out
