"""Whisper windows from live PCM: one encoder pass per pushed chunk, frames released as soon as
their lookahead has arrived (120 ms past a frame's end at 25 fps).

Audio is encoded in the same 30 s segments as a whole clip: each push re-encodes the current
segment's audio so far (zero-padded to 30 s), and a segment is encoded a last time when it
fills up. Pushing a whole clip at 16 kHz and flushing therefore gives exactly the features of
`WhisperStates.clip_states` + `gather_windows`; pushed in pieces, early frames see less context.
"""

from __future__ import annotations

import numpy as np

from facecast.errors import InvalidArgument
from facecast.lipsync.base import FeatureStream
from facecast.lipsync.musetalk.whisper import SEGMENT_SAMPLES, SEGMENT_STATES, WhisperStates
from facecast.lipsync.musetalk.windows import WHISPER_RATE, WINDOW, gather_windows, samples_needed, window_starts


class WhisperFeatureStream(FeatureStream):
    """push(samples) -> (K, WINDOW * depth, width) float32 windows of the frames now final."""

    def __init__(self, whisper: WhisperStates, sample_rate: int, fps: int):
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise InvalidArgument(f"sample_rate={sample_rate!r} must be a positive integer (Hz)")
        if not 0 < fps <= 120:
            raise InvalidArgument(f"fps={fps!r} must be in 1..120")
        self.whisper, self.sample_rate, self.fps = whisper, int(sample_rate), fps
        self._resampler = None
        if self.sample_rate != WHISPER_RATE:
            from facecast.audio.resampling import StreamResampler

            self._resampler = StreamResampler(self.sample_rate, WHISPER_RATE)
        self.reset()

    # -- FeatureStream -------------------------------------------------------------
    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples: (n,) float32 mono at sample_rate -> windows (K, WINDOW * depth, width) float32."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._input += len(samples)
        self._take(self._resampler.push(samples) if self._resampler else samples)
        last = self._released
        while samples_needed(last, self.fps) <= self._received:
            last += 1
        return self._release(last)

    def flush(self) -> np.ndarray:
        """Release every remaining frame (zeros past the end of the audio), then start afresh."""
        if self._resampler:
            self._take(self._resampler.flush())
        total = max(1, int(round(self._input * self.fps / self.sample_rate))) if self._input else 0
        out = self._release(total)
        self.reset()
        return out

    def reset(self) -> None:
        """Forget all audio: the next push starts a new utterance at frame 0."""
        if self._resampler:
            self._resampler.reset()
        self._input = 0  # samples pushed, at sample_rate
        self._received = 0  # samples at 16 kHz
        self._segment = np.zeros(0, np.float32)  # 16 kHz audio of the current 30 s segment
        self._segment_start = 0  # whisper frame where the current segment starts
        self._stale = False  # the current segment has audio its states have not seen
        self._states = np.zeros((0, self.whisper.depth, self.whisper.width), np.float32)
        self._states_start = 0  # whisper frame of self._states[0]
        self._released = 0  # video frames returned so far

    # -- internals -------------------------------------------------------------
    def _take(self, samples: np.ndarray) -> None:
        while len(samples):
            room = SEGMENT_SAMPLES - len(self._segment)
            part, samples = samples[:room], samples[room:]
            self._segment = np.concatenate([self._segment, part])
            self._received += len(part)
            self._stale = True
            if len(self._segment) == SEGMENT_SAMPLES and len(samples):
                self._encode()  # final states of a full segment, then the next one
                self._segment = np.zeros(0, np.float32)
                self._segment_start += SEGMENT_STATES

    def _encode(self) -> None:
        fresh = self.whisper.segment_states(self._segment)
        keep = self._states[: max(0, self._segment_start - self._states_start)]
        if len(keep) == 0:
            self._states_start = self._segment_start
        self._states = np.concatenate([keep, fresh])
        self._stale = False

    def _release(self, stop: int) -> np.ndarray:
        if stop <= self._released:
            return np.zeros((0, WINDOW * self.whisper.depth, self.whisper.width), np.float32)
        if self._stale:
            self._encode()
        starts = window_starts(np.arange(self._released, stop), self.fps)
        out = gather_windows(self._states, starts, self._states_start)
        self._released = stop
        first_needed = int(window_starts(np.array([stop]), self.fps)[0])
        drop = min(max(0, first_needed - self._states_start), len(self._states))
        self._states, self._states_start = self._states[drop:], self._states_start + drop
        return out
