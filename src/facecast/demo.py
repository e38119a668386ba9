"""The embedded default avatar: scikit-image's public-domain astronaut portrait."""

from __future__ import annotations

from pathlib import Path

import cv2

from facecast.config import cache_dir


def demo_portrait() -> Path:
    """Path of the astronaut portrait (512x512 PNG), written once into the cache folder."""
    from skimage import data

    path = cache_dir() / "demo" / "astronaut.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.png")
        cv2.imwrite(str(tmp), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        tmp.replace(path)
    return path
