"""Speech waiting to be shown: utterances of mouth features and the audio they go with.

Audio is the master clock. Output frame f covers output samples [f*sr/fps, (f+1)*sr/fps); an
utterance's frames are taken in order and each carries exactly the samples of the output frame it
becomes, so picture and sound stay locked however utterances and idle gaps are interleaved.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from facecast.audio.resampling import StreamResampler
from facecast.growing import Growing
from facecast.lipsync.base import FeatureStream

COMPACT_SAMPLES = 48_000  # samples: a consumed prefix longer than this is dropped


def frame_samples(frame: int, sample_rate: int, fps: int) -> int:
    """Number of samples output frame `frame` covers: [f*sr/fps, (f+1)*sr/fps), rounded."""
    return int(round((frame + 1) * sample_rate / fps)) - int(round(frame * sample_rate / fps))


class Utterance:
    """One stretch of speech.

    features: (N, C) float32 rows, one per video frame; pcm: (M,) float32 at the session rate
    (both views of Growing buffers); complete: no more rows or samples will come (a clip, or a
    live utterance that ended); marks: (first sample index, arrival time s) of live chunks, oldest
    first; row: next row to show; sample: output samples the shown rows span; fed: samples handed
    out (>= sample while a lead runs ahead).
    """

    def __init__(self, features: np.ndarray, pcm: np.ndarray, complete: bool):
        self._features, self._pcm = Growing(features, np.float32), Growing(pcm, np.float32)
        self.complete = complete
        self.marks: deque = deque()
        self.row = self.sample = self.fed = 0

    @property
    def features(self) -> np.ndarray:
        return self._features.array

    @property
    def pcm(self) -> np.ndarray:
        return self._pcm.array

    def add_pcm(self, pcm: np.ndarray) -> None:
        self._pcm.append(pcm)

    def add_rows(self, rows: np.ndarray) -> None:
        self._features.append(rows)

    def forget_shown(self) -> None:
        """Drop the rows and samples already shown (indices move down accordingly)."""
        self._pcm.drop(self.sample)
        self._features.drop(self.row)
        self.marks = deque((index - self.sample, t) for index, t in self.marks)
        self.fed -= self.sample
        self.sample, self.row = 0, 0

    def ready(self) -> int:
        """Rows that can be shown now (their audio has arrived, or the utterance is complete)."""
        return len(self._features) - self.row

    def exhausted(self) -> bool:
        return self.complete and self.row >= len(self._features)


@dataclass
class TakenFrames:
    """Frames taken from the queue: features (B, C), pcm (n,), live-chunk arrival times shown;
    finished: utterances shown to their last frame so far (the queue's running count); spoken:
    the frames come from an utterance (its pauses included), not idle."""

    features: np.ndarray
    pcm: np.ndarray
    arrivals: list[float]
    finished: int = 0
    spoken: bool = False


class SpeechQueue:
    """Utterances in play order. Not thread-safe: the session's producer thread owns it.

    sample_rate: session (output) rate in Hz; fps: frames per second; columns: feature width;
    stream_factory(rate, fps): a FeatureStream for live audio (the backend's stream_features).
    """

    def __init__(self, sample_rate: int, fps: int, columns: int, stream_factory):
        self.sample_rate, self.fps, self.columns = sample_rate, fps, columns
        self._factory = stream_factory
        self._queue: deque[Utterance] = deque()
        self._stream: FeatureStream | None = None  # one for the session: it learns the voice's levels
        self._live_open = False  # a live utterance is taking audio through self._stream
        self._resamplers: dict[int, StreamResampler] = {}
        self.finished = 0  # utterances shown to their last frame (not those dropped by clear())

    # -- input -------------------------------------------------------------------------------
    def add_clip(self, features: np.ndarray, pcm: np.ndarray) -> None:
        """A whole utterance: features (N, C), pcm (M,) at the session rate."""
        self._close_live()
        self._queue.append(Utterance(np.asarray(features, np.float32), np.asarray(pcm, np.float32), True))

    def push(self, samples: np.ndarray, rate: int, arrived: float) -> None:
        """Live audio: samples (n,) float32 at `rate` Hz, arrived at monotonic time `arrived` (s)."""
        self.push_chunks([(samples, arrived)], rate)

    def push_chunks(self, chunks: list[tuple[np.ndarray, float]], rate: int) -> None:
        """Consecutive live chunks [(samples (n,) float32 at `rate` Hz, arrival time s)], analysed
        as one block (one analysis, one normaliser refit at most, however many chunks)."""
        utt = self._open_live()
        start, offset = len(utt.pcm), 0
        for samples, arrived in chunks:
            utt.marks.append((start + int(round(offset * self.sample_rate / rate)), arrived))
            offset += len(samples)
        samples = chunks[0][0] if len(chunks) == 1 else np.concatenate([c[0] for c in chunks])
        pcm = self._resample(samples, rate)
        utt.add_pcm(pcm)
        self._add_rows(utt, self._stream.push(pcm))

    def end(self) -> None:
        """End of the live utterance: its last frames become ready."""
        self._close_live()

    def clear(self) -> None:
        """Interrupt: drop everything queued, live audio included."""
        self._queue.clear()
        if self._live_open:
            self._stream.reset()
        self._live_open = False
        for resampler in self._resamplers.values():
            resampler.reset()

    # -- output ------------------------------------------------------------------------------
    def ready(self) -> int:
        """Frames that can be taken now."""
        self._pop_exhausted()
        return self._queue[0].ready() if self._queue else 0

    @property
    def live_open(self) -> bool:
        """A live utterance is receiving audio (its next frames are on their way)."""
        return self._live_open

    def queued_seconds(self) -> float:
        """Audio queued and not yet shown, in seconds."""
        return sum(len(u.pcm) - u.sample for u in self._queue) / self.sample_rate

    def take(self, first_frame: int, count: int, lead: int = 0) -> TakenFrames:
        """Up to `count` ready frames of the head utterance, as output frames first_frame.. .

        lead: samples of a complete utterance's audio to hand out ahead of its frames (so the
        audio encoder's delay is covered); the audio handed out never passes the utterance's end.
        """
        self._pop_exhausted()
        utt = self._queue[0]
        n = min(count, utt.ready())
        rows = utt.features[utt.row: utt.row + n]
        utt.row += n
        utt.sample += sum(frame_samples(first_frame + i, self.sample_rate, self.fps) for i in range(n))
        pcm = self._audio_out(utt, lead if utt.complete and not utt.exhausted() else 0)
        arrivals = []
        while utt.marks and utt.marks[0][0] < utt.sample:
            arrivals.append(utt.marks.popleft()[1])
        _compact(utt)
        self._pop_exhausted()
        return TakenFrames(rows, pcm, arrivals, self.finished, spoken=True)

    @staticmethod
    def _audio_out(utt: Utterance, lead: int) -> np.ndarray:
        """Samples [utt.fed, utt.sample + lead); zeros where shown frames overhang the audio."""
        end = utt.sample + lead
        if end <= utt.fed:
            return np.zeros(0, np.float32)
        pcm = utt.pcm[utt.fed: end]
        missing = utt.sample - utt.fed - len(pcm)
        if missing > 0:
            pcm = np.concatenate([pcm, np.zeros(missing, np.float32)])
        utt.fed += len(pcm)
        return pcm

    def silence(self, first_frame: int, count: int, rows: np.ndarray) -> TakenFrames:
        """Idle frames: the given closed-mouth rows (count, C) and silent audio."""
        n = sum(frame_samples(first_frame + i, self.sample_rate, self.fps) for i in range(count))
        self._pop_exhausted()
        return TakenFrames(rows, np.zeros(n, np.float32), [], self.finished)

    # -- internals ---------------------------------------------------------------------------
    def _open_live(self) -> Utterance:
        if not self._live_open:
            if self._stream is None:
                self._stream = self._factory(self.sample_rate, self.fps)
            self._live_open = True
            empty = np.zeros((0, self.columns), np.float32)
            self._queue.append(Utterance(empty, np.zeros(0, np.float32), False))
        return self._queue[-1]

    def _close_live(self) -> None:
        if not self._live_open:
            return
        utt = self._queue[-1]
        self._add_rows(utt, self._stream.flush())
        utt.complete = True
        self._live_open = False

    def _add_rows(self, utt: Utterance, rows: np.ndarray) -> None:
        if len(rows):
            utt.add_rows(np.asarray(rows, np.float32).reshape(len(rows), -1))

    def _resample(self, samples: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.sample_rate:
            return np.asarray(samples, np.float32)
        if rate not in self._resamplers:
            self._resamplers[rate] = StreamResampler(rate, self.sample_rate)
        return self._resamplers[rate].push(samples)

    def _pop_exhausted(self) -> None:
        while self._queue and self._queue[0].exhausted():
            self._queue.popleft()
            self.finished += 1


def _compact(utt: Utterance) -> None:
    """Forget what a long utterance has already shown, so a live one never grows without bound."""
    if utt.complete or utt.sample < COMPACT_SAMPLES:
        return
    utt.forget_shown()
