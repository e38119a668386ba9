"""The classic CPU backend: mouth parameters -> a mesh-driven warp of the lower face."""

from facecast.lipsync.classic.backend import ClassicBackend

__all__ = ["ClassicBackend"]
