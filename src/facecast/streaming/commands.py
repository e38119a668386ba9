"""Commands a transport sends to a session: small frozen dataclasses, one per kind of input.

A session applies them on its worker thread in the order they were sent. Speech sessions take
Say, PcmChunk, EndOfUtterance, Interrupt and Wake; live-portrait sessions take CameraFrame,
OversizeFrame and ControlText. `epoch` is the session's interrupt count when the command was
made: speech commands older than the latest Interrupt are dropped unapplied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.audio.tts import Speech


@dataclass(frozen=True)
class Say:
    """Speak a whole utterance (text synthesized, or a decoded file) after what is queued.
    seconds: its duration, counted as queued speech until the worker applies it."""

    speech: Speech
    seconds: float
    epoch: int = 0


@dataclass(frozen=True, eq=False)
class PcmChunk:
    """Live audio: samples (n,) float32 mono in [-1, 1] at `rate` Hz, arrived at `arrived`
    (time.monotonic() s); consecutive chunks form one utterance."""

    samples: np.ndarray
    rate: int
    arrived: float
    epoch: int = 0

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True)
class EndOfUtterance:
    """The live utterance is complete: its last frames may be shown."""

    epoch: int = 0


@dataclass(frozen=True)
class Interrupt:
    """Drop queued speech; the next frame shows a closed mouth. at: time.monotonic() s it was asked."""

    at: float
    epoch: int = 0


@dataclass(frozen=True)
class Wake:
    """No input: makes a waiting worker look at its stop flag."""

    epoch: int = 0


SpeechCommand = Say | PcmChunk | EndOfUtterance | Interrupt | Wake


@dataclass(frozen=True)
class CameraFrame:
    """One driver frame: encoded image bytes (JPEG, PNG or WebP), received at `received_s`
    (time.perf_counter() s)."""

    data: bytes
    received_s: float


@dataclass(frozen=True)
class OversizeFrame:
    """A driver frame refused unread: `size` bytes, over the session's limit (reported in order)."""

    size: int


@dataclass(frozen=True)
class ControlText:
    """A JSON control message as the client sent it, e.g. '{"type": "pause"}'."""

    text: str


PortraitCommand = CameraFrame | OversizeFrame | ControlText
