"""The in-memory audio type shared by every module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Audio:
    """Mono PCM audio.

    samples: (N,) float32 in [-1, 1]
    sample_rate: Hz
    """

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)

    def frame_count(self, fps: int) -> int:
        """Number of video frames this audio drives: round(duration * fps), at least 1."""
        return max(1, int(round(len(self.samples) * fps / self.sample_rate)))

    def frame_slice(self, frame: int, fps: int) -> slice:
        """Samples covered by video frame `frame`: [f*sr/fps, (f+1)*sr/fps)."""
        start = int(round(frame * self.sample_rate / fps))
        stop = int(round((frame + 1) * self.sample_rate / fps))
        return slice(start, stop)
