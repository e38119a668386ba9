"""The prepared avatar: source frames, per-frame face mesh and face boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.avatar import topology as topo


@dataclass
class Avatar:
    """A prepared avatar, loaded from the cache.

    frames: (F, H, W, 3) uint8 BGR; F == 1 for a photo (an array). A video's frames are a
        read-only facecast.avatar.frame_store.FrameStore: JPEG on disk, decoded on demand,
        indexed like the array (frames[i], frames[indices], frames.shape)
    landmarks: (F, 478, 3) float32; x, y in pixels, z in pixels (mediapipe's relative depth)
    boxes: (F, 4) float32 face box x0, y0, x1, y1 in pixels, smoothed over time for video
    lower_face: (F, P, 2) float32 px polygon of the region the mouth may change, per frame
    mouth: (F, 20, 2) float32 px polygon around the lips, per frame
    fps: source frame rate (0.0 for a photo): frames are on a constant grid of this rate, each
        source frame at its own timestamp (a variable-rate clip repeats frames where it is slow;
        see media.reader.read_visual), so index / fps is the source time in seconds
    """

    id: str
    name: str
    frames: np.ndarray  # or a FrameStore (video avatars)
    landmarks: np.ndarray
    boxes: np.ndarray
    lower_face: np.ndarray
    mouth: np.ndarray
    fps: float
    cache_dir: Path

    @property
    def is_video(self) -> bool:
        return self.frames.shape[0] > 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])

    def source_index(self, output_frame: np.ndarray | int, output_fps: float | None = None) -> np.ndarray:
        """Map output frame numbers to source frames, looping forward then backward.

        output_frame: int or (B,) int array -> same shape of int64 indices in [0, F).
        output_fps: the output's frame rate; a video avatar then plays at its own speed, output
            frame f showing the source frame on show at time f / output_fps (a 30 fps source
            rendered at 25 fps skips one source frame in six; a variable-rate source keeps each
            frame's timing, as its frames lie on the constant grid `fps`). None: one source frame
            per output frame.
        """
        f = np.asarray(output_frame, dtype=np.int64)
        n = self.frame_count
        if n == 1:
            return np.zeros_like(f)
        if output_fps and self.fps > 0:
            f = np.floor(f * (self.fps / output_fps) + 1e-6).astype(np.int64)
        period = 2 * n - 2
        phase = f % period
        return np.where(phase < n, phase, period - phase)

    def face_scale(self, index: int = 0) -> float:
        """Distance between the outer eye corners of frame `index`, in pixels."""
        a, b = topo.EYE_OUTER_CORNERS
        pts = self.landmarks[index, :, :2]
        return float(np.linalg.norm(pts[a] - pts[b]))
