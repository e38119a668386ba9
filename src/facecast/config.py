"""Settings as frozen dataclasses, with FACECAST_-prefixed environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from facecast.errors import InvalidArgument

DEFAULT_FPS = 25
MAX_LONG_SIDE = 1024  # px: output long side is capped here
ANALYSIS_SAMPLE_RATE = 16_000  # Hz: audio features are computed at this rate
MAX_FPS = 120  # frames per second, whole numbers only (the encoder's time base is 1/fps)
MAX_SEED = 2**32 - 1  # NumPy's seed range
MIN_LONG_SIDE = 16  # px: the smallest avatar long side preparation accepts
MAX_VIDEO_SECONDS = 30.0  # s: longest video avatar; longer sources are refused (never silently cut)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


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
    max_video_seconds: float = MAX_VIDEO_SECONDS  # s: longer video avatars are refused
    box_smoothing: float = 0.6  # 0..1: weight of the previous box in the video face-box filter
    min_detection_confidence: float = 0.3
    face: int | None = None  # which face of several: None = the largest, N = the N-th from the left (0-based)

    def __post_init__(self) -> None:
        check_max_size(self.max_long_side)
        if self.face is not None and (isinstance(self.face, bool) or not isinstance(self.face, int) or self.face < 0):
            raise InvalidArgument(f"--face {self.face!r}: give a face index 0, 1, 2, ... (0 = the leftmost face)")

    def key(self) -> dict:
        key = {
            "max_long_side": self.max_long_side,
            "max_video_seconds": self.max_video_seconds,
            "box_smoothing": self.box_smoothing,
            "min_detection_confidence": self.min_detection_confidence,
        }
        if self.face is not None:  # the default (largest face) keeps the keys of existing caches
            key["face"] = self.face
        return key


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

    def __post_init__(self) -> None:
        check_fps(self.fps)
        check_seed(self.seed)
        check_crf(self.crf)
        check_preset(self.preset)


# Value checks shared by the settings above and the command line's argument types (facecast.cli).
# Each raises InvalidArgument naming the option and the value, and saying what is allowed.

def check_fps(value) -> int:
    """Frames per second: a whole number 1..MAX_FPS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FPS:
        raise InvalidArgument(f"--fps {value!r}: give a whole number of frames per second from 1 to {MAX_FPS} "
                              "(fractional rates such as 29.97 or 30000/1001 are not supported; use 30)")
    return value


def check_seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise InvalidArgument(f"--seed {value!r}: give a whole number from 0 to {MAX_SEED}")
    return value


def check_crf(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 51:
        raise InvalidArgument(f"--crf {value!r}: give a whole number from 0 (best) to 51 (smallest)")
    return value


def check_preset(value) -> str:
    if value not in X264_PRESETS:
        raise InvalidArgument(f"--preset {value!r}: not an x264 preset; choose one of {', '.join(X264_PRESETS)}")
    return value


def check_max_size(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_LONG_SIDE:
        raise InvalidArgument(f"--max-size {value!r}: the long side must be at least {MIN_LONG_SIDE} px")
    return value
