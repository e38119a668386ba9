"""Avatar latents on disk: <avatar.cache_dir>/musetalk/<key>.npy, keyed by the VAE's identity.

Latents depend only on the avatar, the crop framing and the VAE (and the dtype it ran in), so a
second preparation of the same avatar with the same weights loads them instead of running the
VAE encoder over every frame. Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from facecast.files import atomic_path
from facecast.lipsync.musetalk import crops

LATENTS_VERSION = 1  # bump when the crop framing or the encoding changes
SUBDIR = "musetalk"


def latents_key(vae_identity: str, dtype: str) -> str:
    """24 hex digits over the VAE identity, the dtype, the crop settings and LATENTS_VERSION."""
    settings = {"vae": vae_identity, "dtype": dtype, "version": LATENTS_VERSION, "crop": crops.CROP,
                "bridge": crops.NOSE_BRIDGE, "chin_margin": crops.CHIN_MARGIN}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def latents_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / SUBDIR / f"{key}.npy"


def load_latents(path: Path, frames: int) -> np.ndarray | None:
    """Cached latents (frames, 8, 32, 32) float16/float32, or None when absent or not matching."""
    try:
        latents = np.load(path)
    except (OSError, ValueError):
        return None
    if latents.ndim != 4 or latents.shape[0] != frames:
        return None
    return latents


def store_latents(path: Path, latents: np.ndarray) -> bool:
    """Write latents atomically; False (and nothing written) when the cache dir is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, latents)
        return True
    except OSError:
        return False
