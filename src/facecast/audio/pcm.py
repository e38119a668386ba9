"""The in-memory audio type shared by every module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Audio:
    """PCM audio: the mono mix every analysis uses, and the input's own channels for output.

    samples: (N,) float32 in [-1, 1], the mono mix (mouth motion, features, streaming)
    sample_rate: Hz
    channels: (C, N) float32 in [-1, 1], the input's channels (C == 2: left, right) that files
        are written with; None when the input was mono (output uses `samples`)
    """

    samples: np.ndarray
    sample_rate: int
    channels: np.ndarray | None = None

    @property
    def output_channels(self) -> np.ndarray:
        """(C, N) float32: what an output file carries (the input's channels, else the mono mix)."""
        return self.channels if self.channels is not None else self.samples[None, :]

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
