"""The lip-sync backend interface and the registry that picks one by name.

A backend turns speech into mouth-region pixels. The engine, CLI and server
only talk to this interface, so a GPU backend slots in beside the CPU default:

    backend = get_backend("classic")
    backend.prepare(avatar)                         # once per avatar, cached
    track = backend.audio_features(audio, fps)      # (N, ...) per video frame
    frames = backend.render(avatar, track[i:j], np.arange(i, j))  # (B, H, W, 3) uint8 BGR
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np

from facecast.errors import InvalidArgument

if TYPE_CHECKING:
    from facecast.audio.pcm import Audio
    from facecast.avatar.model import Avatar
    from facecast.audio.tts import PhonemeEvent


class FeatureStream(ABC):
    """Incremental per-frame features from live PCM (for streaming sessions)."""

    @abstractmethod
    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add mono float32 samples; return the features of frames now complete, (K, ...)."""

    @abstractmethod
    def flush(self) -> np.ndarray:
        """End of utterance: return the features of the remaining frames, (K, ...)."""

    @abstractmethod
    def reset(self) -> None:
        """Drop buffered audio (interrupt)."""


class LipsyncBackend(ABC):
    """Speech features -> rendered frames of an avatar."""

    name: ClassVar[str]
    #: frames per render() call the backend runs best at (a GPU batch); None: the engine's default
    batch_size: int | None = None

    @abstractmethod
    def prepare(self, avatar: "Avatar") -> None:
        """Compute (or load from the avatar's cache dir) what this backend needs per avatar."""

    @abstractmethod
    def audio_features(self, audio: "Audio", fps: int) -> np.ndarray:
        """Per-video-frame features of a whole clip: (audio.frame_count(fps), ...) array."""

    def text_features(self, phonemes: list["PhonemeEvent"], n_frames: int, fps: int) -> np.ndarray | None:
        """Features from timed phonemes (text-to-speech); None where the backend has none."""
        return None

    @abstractmethod
    def stream_features(self, sample_rate: int, fps: int) -> FeatureStream:
        """A feature extractor for live audio at `sample_rate` Hz."""

    @abstractmethod
    def silence_features(self, n_frames: int) -> np.ndarray:
        """Features of `n_frames` frames of silence (closed mouth), for idling."""

    @abstractmethod
    def render(self, avatar: "Avatar", features: np.ndarray, frame_indices: np.ndarray) -> np.ndarray:
        """Render a batch.

        features: (B, ...) rows of `audio_features` output
        frame_indices: (B,) int, index into the avatar's source frames (already looped)
        returns: (B, H, W, 3) uint8 BGR full frames at the avatar's size
        """


_REGISTRY: dict[str, Callable[[], LipsyncBackend]] = {}


def register_backend(name: str, factory: Callable[[], LipsyncBackend]) -> None:
    """Make a backend available under `name`."""
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_backend(name: str = "classic", **options) -> LipsyncBackend:
    """Instantiate the backend registered under `name` (keyword options go to its factory)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise InvalidArgument(f"backend={name!r} is not known; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[name](**options)


def _load_builtin() -> None:
    if "classic" not in _REGISTRY:
        from facecast.lipsync import classic  # noqa: F401  (registers itself)
    if "musetalk" not in _REGISTRY:
        try:
            from facecast.lipsync import musetalk  # noqa: F401
        except ImportError:
            pass
