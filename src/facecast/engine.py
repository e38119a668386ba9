"""Rendering a whole clip: speech -> per-frame features -> backend batches -> encoder.

Rendering and encoding overlap: frames go to the encoder thread through a bounded queue.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.audio.pcm import Audio
from facecast.avatar.model import Avatar
from facecast.config import RenderSettings
from facecast.errors import InvalidArgument
from facecast.idle import idle_motion
from facecast.lipsync.base import LipsyncBackend, get_backend
from facecast.media.writer import Mp4Writer
from facecast.types import Progress

BATCH = 8  # frames rendered per backend call
QUEUE_BATCHES = 4  # rendered batches waiting for the encoder at most


@dataclass(frozen=True)
class Speech:
    """What drives the mouth: audio, and for synthesized text its timed phonemes."""

    audio: Audio
    phonemes: list | None = None


def speech_from_text(text: str, voice: str = "en") -> Speech:
    """Synthesize `text` offline; its phoneme timings drive visemes directly."""
    from facecast.audio.tts import synthesize

    spoken = synthesize(text, voice=voice)
    return Speech(spoken.audio, spoken.phonemes)


def speech_from_file(path: str | Path) -> Speech:
    from facecast.audio.decode import load_audio

    return Speech(load_audio(path))


def features_for(backend: LipsyncBackend, speech: Speech, fps: int) -> np.ndarray:
    """Per-frame features (N, ...) with N = speech.audio.frame_count(fps)."""
    n = speech.audio.frame_count(fps)
    if speech.phonemes is not None:
        track = backend.text_features(speech.phonemes, n, fps)
        if track is not None:
            return track
    return backend.audio_features(speech.audio, fps)


def frame_batches(backend: LipsyncBackend, avatar: Avatar, features: np.ndarray, settings: RenderSettings,
                  start: int = 0, batch: int = BATCH):
    """Yield rendered batches (B, H, W, 3) uint8 BGR for output frames start.. of `features`."""
    idle = settings.idle and not avatar.is_video
    for lo in range(0, len(features), batch):
        numbers = np.arange(start + lo, start + min(lo + batch, len(features)))
        motion = idle_motion(numbers, settings.fps, settings.seed) if idle else None
        yield backend.render(avatar, features[lo: lo + len(numbers)], avatar.source_index(numbers, settings.fps),
                             idle=motion)


def render_to_file(avatar: Avatar, speech: Speech, out_path: str | Path,
                   settings: RenderSettings = RenderSettings(), *,
                   backend: LipsyncBackend | None = None, progress: Progress | None = None) -> Path:
    """Render `speech` on `avatar` to an MP4 (H.264 + AAC). Returns the output path.

    The file appears only when complete; any error leaves nothing behind.
    """
    if settings.fps <= 0 or settings.fps > 120:
        raise InvalidArgument(f"fps={settings.fps!r} must be in 1..120")
    backend = backend or get_backend(settings.backend)
    backend.prepare(avatar)
    features = features_for(backend, speech, settings.fps)
    total = len(features)
    writer = Mp4Writer(out_path, avatar.size, settings.fps, speech.audio, crf=settings.crf, preset=settings.preset)
    encoded = _EncoderThread(writer, total, progress)
    try:
        for frames in frame_batches(backend, avatar, features, settings, batch=backend.batch_size or BATCH):
            encoded.put(frames)
        encoded.finish()
    except BaseException:
        encoded.cancel()
        writer.abort()
        raise
    return writer.close()


class _EncoderThread:
    """Feeds a writer from a bounded queue on its own thread; re-raises its errors."""

    def __init__(self, writer: Mp4Writer, total: int, progress: Progress | None):
        self._writer, self._total, self._progress = writer, total, progress
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facecast-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (frames := self._queue.get()) is not None:
                self._writer.write(frames)
                if self._progress:
                    self._progress(self._writer.frames_written, self._total)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._error = exc
            while self._queue.get() is not None:
                pass

    def put(self, frames: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frames)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
