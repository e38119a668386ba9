"""Lip-sync backends behind one interface, chosen by name from a registry."""

from facecast.lipsync.base import (BUILTIN_BACKENDS, LipsyncBackend, NoOptions, available_backends,
                                   get_backend, register_backend)

__all__ = ["BUILTIN_BACKENDS", "LipsyncBackend", "NoOptions", "available_backends", "get_backend",
           "register_backend"]
