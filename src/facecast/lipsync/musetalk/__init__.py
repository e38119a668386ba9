"""The `musetalk` backend: GPU lip-sync with MuseTalk-compatible checkpoints (pip install "facecast[gpu]").

Importing this package needs no torch; the backend's modules load when one is created:

    backend = get_backend("musetalk", model_dir="models/")   # musetalkV15/ or musetalk/, sd-vae/, whisper/
"""

from __future__ import annotations

from facecast.errors import FacecastError
from facecast.lipsync.base import LipsyncBackend, register_backend

GPU_EXTRA_HINT = 'pip install "facecast[gpu]"'


class MissingGpuExtra(FacecastError):
    """The packages of the gpu extra (torch, diffusers, transformers) are not installed."""


def create(model_dir=None, **options) -> LipsyncBackend:
    """Factory registered as "musetalk": MuseTalkBackend(model_dir, **options)."""
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingGpuExtra(f"backend 'musetalk' needs {exc.name}: {GPU_EXTRA_HINT}") from None
    from facecast.lipsync.musetalk.backend import MuseTalkBackend

    return MuseTalkBackend(model_dir, **options)


register_backend("musetalk", create)
