"""Training checkpoints: one file, written atomically, that a killed run resumes from exactly.

It holds the student, the optimiser, the gradient scaler, the step and samples seen (the data
position: batches are a function of the seed and the step), the seconds spent, the loss and
evaluation history, the fingerprint of the settings that shape training, and every RNG state
(torch CPU and CUDA, numpy, Python). Only tensors and plain values are stored, so it loads with
torch.load(weights_only=True).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from facecast.errors import InvalidArgument
from facecast.files import atomic_path

FORMAT = 1


def rng_state() -> dict:
    """Every random generator's state, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                        int(has_gauss), float(cached)],
             "python": _python_state(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def save(path: Path, payload: dict) -> Path:
    """Write `payload` (plus the RNG states and the format number) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({**payload, "rng": rng_state(), "format": FORMAT}, tmp)
    return path


def load(path: Path, fingerprint: dict) -> dict:
    """The checkpoint at `path`, checked against the run's `fingerprint`; the RNG states are restored.

    Raises InvalidArgument when it is missing, unreadable, or made with other settings (named).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidArgument(f"--resume: no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same problem for the user
        raise InvalidArgument(f"--resume: {path} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InvalidArgument(f"--resume: {path} is not a facecast distill checkpoint")
    saved = payload.get("fingerprint", {})
    differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if differ:
        shown = ", ".join(f"{k} (was {saved.get(k)!r}, now {fingerprint.get(k)!r})" for k in differ[:3])
        raise InvalidArgument(f"--resume: {path} was made with other settings: {shown}; use the same "
                              "settings, or start again without --resume")
    set_rng_state(payload["rng"])
    return payload
