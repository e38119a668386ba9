"""Audio: decode any common format to mono PCM, speech synthesis, per-frame mouth motion."""

from facecast.audio.pcm import Audio

__all__ = ["Audio"]
