"""The `musetalk` backend: GPU lip-sync with MuseTalk-compatible checkpoints (pip install "facecast[gpu]").

Importing this package needs no torch (the registry reads `Options` before checking the extra);
the backend's modules load when one is created:

    backend = get_backend("musetalk", model_dir="models/")   # musetalkV15/ or musetalk/, sd-vae/, whisper/
    backend = get_backend("musetalk", model_dir="models/", decoder="small", unet="student")  # distilled
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facecast.lipsync.musetalk.backend import MuseTalkBackend


@dataclass(frozen=True)
class Options:
    """Keyword options of get_backend("musetalk"); MuseTalkBackend documents each one."""

    model_dir: str | Path | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: int | None = None
    compile: str | None = None
    speedups: str | tuple[str, ...] | None = None
    decoder: str | None = None  # "full" | "small"
    unet: str | None = None  # "teacher" | "student"
    models: Any = None  # loading.Models: already loaded networks (tests, benchmarks)


def create(options: Options) -> "MuseTalkBackend":
    """Factory of the registry: MuseTalkBackend(**options)."""
    from facecast.lipsync.musetalk.backend import MuseTalkBackend

    kwargs = {f.name: getattr(options, f.name) for f in fields(options)}
    return MuseTalkBackend(kwargs.pop("model_dir"), **kwargs)
