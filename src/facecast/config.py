"""Settings as frozen dataclasses, with FACECAST_-prefixed environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_FPS = 25
MAX_LONG_SIDE = 1024  # px: output long side is capped here
ANALYSIS_SAMPLE_RATE = 16_000  # Hz: audio features are computed at this rate


def env(name: str, default: str | None = None) -> str | None:
    """Read FACECAST_<NAME> from the environment."""
    return os.environ.get(f"FACECAST_{name}", default)


def cache_dir() -> Path:
    """Root of the on-disk avatar cache (FACECAST_CACHE_DIR, else ~/.cache/facecast)."""
    root = env("CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "facecast"


@dataclass(frozen=True)
class PrepareSettings:
    """Settings that change what avatar preparation produces (part of the cache key)."""

    max_long_side: int = MAX_LONG_SIDE
    max_video_seconds: float = 30.0  # s: longer video avatars are trimmed
    box_smoothing: float = 0.6  # 0..1: weight of the previous box in the video face-box filter
    min_detection_confidence: float = 0.3

    def key(self) -> dict:
        return {
            "max_long_side": self.max_long_side,
            "max_video_seconds": self.max_video_seconds,
            "box_smoothing": self.box_smoothing,
            "min_detection_confidence": self.min_detection_confidence,
        }


@dataclass(frozen=True)
class RenderSettings:
    """Settings of one render: frame rate, idle life, encoder."""

    fps: int = DEFAULT_FPS
    idle: bool = True  # blinks and head sway
    seed: int = 0  # seed of the idle-life randomness (blink times, sway phase)
    crf: int = 23  # libx264 quality
    preset: str = "ultrafast"
    backend: str = "classic"
    extra: dict = field(default_factory=dict)
