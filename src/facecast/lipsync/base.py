"""The lip-sync backend contract and the registry that creates a backend by name.

A backend turns speech into rendered frames of an avatar. The engine, CLI and server only talk
to this interface, so a GPU backend slots in beside the CPU default:

    backend = get_backend("classic")                 # options are checked against the backend's own
    backend.prepare(avatar)                          # once per avatar, cached
    track = backend.audio_features(audio, fps)       # (N, ...) one row per output frame
    numbers = np.arange(i, j)                        # output frame numbers
    frames = backend.render(avatar, track[i:j], avatar.source_index(numbers, fps),
                            idle=idle_motion(numbers, fps))  # (B, H, W, 3) uint8 BGR

Built-in backends are listed in BUILTIN_BACKENDS (name -> module) and imported only when asked
for; each module defines `Options` (a frozen dataclass: the keyword options the backend accepts)
and `create(options) -> LipsyncBackend`. Other code adds backends with register_backend().
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from facecast.errors import InvalidArgument, MissingDependency

if TYPE_CHECKING:
    from facecast.audio.pcm import Audio
    from facecast.audio.tts import PhonemeEvent
    from facecast.avatar.model import Avatar


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
    def render(self, avatar: "Avatar", features: np.ndarray, source_indices: np.ndarray, *,
               idle: np.ndarray | None = None) -> np.ndarray:
        """Render a batch of B output frames.

        features: (B, ...) rows of audio_features / text_features / silence_features output
        source_indices: (B,) int, the avatar source frame of each output frame, already looped
            (avatar.source_index(output frame numbers, fps)), each in [0, avatar.frame_count)
        idle: (B, 4) float32 idle motion of the output frames (facecast.idle.idle_motion:
            blink 0..1, roll degrees, shift across, shift down in face units), or None for none;
            a backend that cannot show it ignores it
        returns: (B, H, W, 3) uint8 BGR full frames at the avatar's size
        """


@dataclass(frozen=True)
class NoOptions:
    """Options of a backend that takes none."""


@dataclass(frozen=True)
class BuiltinBackend:
    """Where a built-in backend lives and what it needs beyond the base install.

    module: imported on first use, needs none of `requires`; defines `Options` (frozen
        dataclass) and `create(options)`, which may import them
    requires: top-level third-party modules the backend imports
    extra: the pip extra that installs `requires`
    """

    module: str
    requires: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def install_hint(self) -> str:
        return f'pip install "facecast[{self.extra}]"'


BUILTIN_BACKENDS: dict[str, BuiltinBackend] = {
    "classic": BuiltinBackend("facecast.lipsync.classic"),
    "musetalk": BuiltinBackend("facecast.lipsync.musetalk", extra="gpu",
                               requires=("torch", "diffusers", "transformers", "safetensors")),
}


@dataclass(frozen=True)
class _Registration:
    factory: Callable[[Any], LipsyncBackend]  # called with an instance of `options`
    options: type
    builtin: BuiltinBackend | None = None


_REGISTRY: dict[str, _Registration] = {}  # registered backends and built-ins imported so far


def register_backend(name: str, factory: Callable[[Any], LipsyncBackend], options: type = NoOptions) -> None:
    """Make a backend available under `name`.

    options: a frozen dataclass whose fields are the keyword options the backend accepts;
    factory: called with one instance of it.
    """
    _REGISTRY[name] = _Registration(factory, options)


def available_backends() -> list[str]:
    """Names get_backend() knows (built-in ones are listed without being imported)."""
    return sorted(set(BUILTIN_BACKENDS) | set(_REGISTRY))


def get_backend(name: str = "classic", **options) -> LipsyncBackend:
    """Create the backend registered under `name` with keyword `options`.

    Raises InvalidArgument for an unknown name or an option the backend does not accept, and
    MissingDependency when a built-in backend's optional packages are not installed.
    """
    registration = _registration(name)
    accepted = [f.name for f in fields(registration.options)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"it accepts {', '.join(accepted)}" if accepted else "it accepts none"
        raise InvalidArgument(f"backend {name!r} does not take option {', '.join(unknown)}; {takes}")
    opts = registration.options(**options)
    builtin = registration.builtin
    for module in builtin.requires if builtin is not None else ():
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(f"backend {name!r} needs {module}, which is not installed: {builtin.install_hint}")
    try:
        return registration.factory(opts)
    except ModuleNotFoundError as exc:
        if builtin is not None:
            _raise_if_missing(name, builtin, exc)
        raise


def _registration(name: str) -> _Registration:
    """The registration of `name`, importing a built-in backend's module on first use."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    builtin = BUILTIN_BACKENDS.get(name)
    if builtin is None:
        raise InvalidArgument(f"backend={name!r} is not known; choose one of {available_backends()}")
    try:
        module = importlib.import_module(builtin.module)
    except ModuleNotFoundError as exc:
        _raise_if_missing(name, builtin, exc)
        raise
    registration = _REGISTRY[name] = _Registration(module.create, module.Options, builtin)
    return registration


def _raise_if_missing(name: str, builtin: BuiltinBackend, exc: ModuleNotFoundError) -> None:
    """Turn a missing third-party module of `builtin` into MissingDependency. Anything else (a
    module of facecast itself, an ImportError raised inside one) is left to propagate."""
    top = (exc.name or "").split(".")[0]
    if builtin.extra is not None and top in builtin.requires:
        raise MissingDependency(f"backend {name!r} needs {exc.name}, which is not installed: "
                           f"{builtin.install_hint}") from None
