"""Write results atomically: MP4 through Mp4Writer, JSON and images through temp + rename."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facecast.audio.pcm import Audio
from facecast.errors import CorruptMedia, EmptyAudio, InvalidArgument, UnsupportedMedia
from facecast.files import atomic_path, atomic_write
from facecast.media.writer import Mp4Writer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def check_output(path: Path, suffixes: tuple[str, ...] = (".mp4",), option: str = "--output", inputs=()) -> Path:
    """Validate an output path before any work starts (facecast.outputs.check_output)."""
    from facecast.outputs import check_output as check

    return check(path, suffixes, option, inputs)


def soundtrack(path: Path) -> Audio | None:
    """The audio track of a video as mono PCM, or None when it has none."""
    from facecast.audio.decode import load_audio

    try:
        return load_audio(path)
    except (UnsupportedMedia, EmptyAudio, CorruptMedia):
        return None


def open_mp4(path: Path, size: tuple[int, int], fps: float, audio: Audio | None = None, *,
             crf: int = 18, preset: str = "veryfast") -> Mp4Writer:
    """An atomic MP4 writer; fps is rounded to whole frames per second (Mp4Writer's time base)."""
    return Mp4Writer(path, size, max(1, int(round(fps))), audio, crf=crf, preset=preset)


def write_json(path: Path, data: dict) -> Path:
    """Write JSON under a temporary name, then rename into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    return Path(path)


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write (H, W, 3) uint8 BGR as PNG/JPEG/... by suffix, under a temporary name first."""
    suffix = Path(path).suffix.lower()

    ok, data = cv2.imencode(suffix, image)
    if not ok:
        raise InvalidArgument(f"{path}: OpenCV cannot write {suffix} images")
    return atomic_write(path, data.tobytes())
