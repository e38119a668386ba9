"""Run per-segment stages over a frame stream, one segment in memory at a time.

Segment k is processed together with the `overlap` frames before it (its run-in), so every
stage restarts its state there; those frames then have two results, the end of segment k-1
and the run-in of segment k, which are cross-faded with linearly rising weights.
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterator, Sequence

import numpy as np

from facecast.compose import blend
from facecast.types import Progress
from facecast.video.segments import Segment

Stage = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A stage: (frames (n, H, W, 3) uint8 BGR, frame numbers (n,) int64) -> (n, H, W, 3) uint8.
It is called once per segment and may overwrite and return the frames it is given (so a
segment is held about once). It restarts its state on every call; the only thing it may keep
is what it found in frames the next call sees again (the run-in), keyed by frame number (the
Footlock stage keeps its contact anchors across a cut this way)."""

Sink = Callable[[np.ndarray], None]


def crossfade(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Blend two versions (n, H, W, 3) uint8 of the same frames; new's weight rises (j+1)/(n+1).
    Frame by frame, so the float temporaries are one frame's, whatever the overlap."""
    n = len(old)
    out = np.empty_like(new)
    for j in range(n):
        w = np.float32((j + 1) / (n + 1))
        out[j] = blend(old[j].astype(np.float32), new[j].astype(np.float32), w)
    return out


def apply_stages(stages: Sequence[Stage], frames: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Run the stages in order on one batch of frames."""
    for stage in stages:
        frames = stage(frames, numbers)
    return frames


def run_segments(source: Iterator[np.ndarray], plan: Sequence[Segment], stages: Sequence[Stage],
                 sink: Sink, *, overlap: int, reserve: int = 0, progress: Progress | None = None) -> int:
    """Process `source` (an iterator of (H, W, 3) uint8 frames) segment by segment into `sink`.

    One buffer of (longest segment or `reserve`, if larger) + overlap frames is allocated
    once and reused, so peak memory is set by the segment length, never by the video's.
    `sink` gets views into that buffer and must consume them before it returns (an encoder
    does). Returns the number of frames written (fewer than planned only when the source
    ends early).
    """
    total = plan[-1].stop if plan else 0
    capacity = max([reserve, *(s.length for s in plan)]) + overlap
    buffer: np.ndarray | None = None
    held = None  # the previous segment's last results, written after the cross-fade
    lead = 0  # run-in frames at the head of the buffer
    written = 0
    for segment in plan:
        buffer, count = _read(source, segment.length, buffer, lead, capacity)
        if count == 0:
            break
        batch = buffer[: lead + count]
        final = segment is plan[-1] or count < segment.length
        keep = 0 if final else min(overlap, count)
        run_in = batch[len(batch) - keep:].copy()  # the next segment's run-in, before stages touch it
        first = segment.start - lead
        result = apply_stages(stages, batch, np.arange(first, first + len(batch), dtype=np.int64))
        if held is not None:
            result[: len(held)] = crossfade(held, result[: len(held)])
        sink(result[: len(result) - keep])
        written += len(result) - keep
        held = result[len(result) - keep:].copy() if keep else None
        buffer[:keep] = run_in
        lead = keep
        if progress:
            progress(written, total)
        if final:
            break
    return written


def _read(source: Iterator[np.ndarray], count: int, buffer: np.ndarray | None, lead: int,
          capacity: int) -> tuple[np.ndarray | None, int]:
    """Fill buffer[lead:] with up to `count` frames of `source` (allocating the buffer of
    `capacity` frames on first use). Returns (buffer, frames read)."""
    first = next(source, None)
    if first is None:
        return buffer, 0
    if buffer is None:
        buffer = np.empty((capacity,) + first.shape, first.dtype)
    buffer[lead] = first
    taken = 1
    for frame in islice(source, count - 1):
        buffer[lead + taken] = frame
        taken += 1
    return buffer, taken
