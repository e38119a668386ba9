"""The embedded default avatar: scikit-image's public-domain astronaut portrait (NASA), shipped
with the package as a 512x512 JPEG (src/facecast/assets/astronaut.jpg, package data)."""

from __future__ import annotations

from pathlib import Path

ASTRONAUT = Path(__file__).resolve().parent / "assets" / "astronaut.jpg"


def demo_portrait() -> Path:
    """Path of the astronaut portrait (512x512 JPEG, RGB), inside the installed package."""
    return ASTRONAUT
