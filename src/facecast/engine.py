"""Rendering a whole clip: speech -> per-frame features -> backend batches -> encoder.

Rendering and encoding overlap: frames go to the encoder thread through a bounded queue.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from facecast.audio.tts import Speech, synthesize
from facecast.avatar.model import Avatar
from facecast.config import RenderSettings
from facecast.errors import InvalidArgument
from facecast.idle import idle_motion
from facecast.lipsync.base import LipsyncBackend, get_backend
from facecast.media.writer import Mp4Writer
from facecast.types import Progress

BATCH = 8  # frames rendered per backend call
QUEUE_BATCHES = 4  # rendered batches waiting for the encoder at most


def speech_from_text(text: str, voice: str = "en") -> Speech:
    """Synthesize `text` offline; its phoneme timings drive visemes directly."""
    return synthesize(text, voice=voice)


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


def render_batch(backend: LipsyncBackend, avatar: Avatar, features: np.ndarray, first: int, fps: int,
                 idle: bool = True, seed: int = 0) -> np.ndarray:
    """Output frames first .. first+B-1 of a stream: features (B, C) -> (B, H, W, 3) uint8 BGR.

    The one place where the engine calls the backend: idle motion (blinks, small head moves;
    none for a video avatar) and the looped source frames come from the output frame numbers.
    """
    numbers = np.arange(first, first + len(features))
    motion = idle_motion(numbers, fps, seed) if idle and not avatar.is_video else None
    return backend.render(avatar, features, avatar.source_index(numbers, fps), idle=motion)


def frame_batches(backend: LipsyncBackend, avatar: Avatar, features: np.ndarray, settings: RenderSettings,
                  start: int = 0, batch: int = BATCH):
    """Yield rendered batches (B, H, W, 3) uint8 BGR for output frames start.. of `features`."""
    for lo in range(0, len(features), batch):
        yield render_batch(backend, avatar, features[lo: lo + batch], start + lo, settings.fps,
                           settings.idle, settings.seed)


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
