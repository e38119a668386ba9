"""Run per-segment stages over a frame stream, one segment in memory at a time.

Segment k is processed together with the `overlap` frames before it (its run-in), so every
stage restarts its state there; those frames then have two results, the end of segment k-1
and the run-in of segment k, which are cross-faded with linearly rising weights.
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterator, Sequence

import numpy as np

from facecast.video.segments import Segment

Stage = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A stage: (frames (n, H, W, 3) uint8 BGR, frame numbers (n,) int64) -> (n, H, W, 3) uint8.
It is called once per segment and must not keep state from one call to the next."""

Sink = Callable[[np.ndarray], None]
Progress = Callable[[int, int], None]


def crossfade(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Blend two versions (n, H, W, 3) uint8 of the same frames; new's weight rises (j+1)/(n+1)."""
    n = len(old)
    w = (np.arange(1, n + 1, dtype=np.float32) / (n + 1))[:, None, None, None]
    return (old.astype(np.float32) * (1.0 - w) + new.astype(np.float32) * w + 0.5).astype(np.uint8)


def apply_stages(stages: Sequence[Stage], frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Run the stages in order on one batch of frames."""
    for stage in stages:
        frames = stage(frames, numbers)
    return frames


def run_segments(source: Iterator[np.ndarray], plan: Sequence[Segment], stages: Sequence[Stage],
                 sink: Sink, *, overlap: int, progress: Progress | None = None) -> int:
    """Process `source` (an iterator of (H, W, 3) uint8 frames) segment by segment into `sink`.

    Holds one segment plus 2 x overlap frames at a time. Returns the number of frames written
    (fewer than planned only when the source ends early).
    """
    total = plan[-1].stop if plan else 0
    tail_in = held = None  # previous segment's last input frames / unwritten results
    written = 0
    for segment in plan:
        frames = list(islice(source, segment.length))
        if not frames:
            break
        chunk = np.stack(frames)
        del frames
        result = _process(stages, chunk, tail_in, segment.start)
        if held is not None:
            result[: len(held)] = crossfade(held, result[: len(held)])
        final = segment is plan[-1] or len(chunk) < segment.length
        keep = 0 if final else min(overlap, len(chunk))
        sink(result[: len(result) - keep])
        written += len(result) - keep
        held = result[len(result) - keep:] if keep else None
        tail_in = chunk[len(chunk) - keep:] if keep else None
        if progress:
            progress(written, total)
        if final:
            break
    return written


def _process(stages: Sequence[Stage], chunk: np.ndarray, run_in: np.ndarray | None, start: int) -> np.ndarray:
    """Stages over run-in + chunk; returns results for the same frames."""
    batch = chunk if run_in is None else np.concatenate([run_in, chunk])
    first = start - (0 if run_in is None else len(run_in))
    return apply_stages(stages, batch, np.arange(first, first + len(batch), dtype=np.int64))
