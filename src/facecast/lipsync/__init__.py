"""Lip-sync backends behind one interface, chosen by name from a registry."""

from facecast.lipsync.base import LipsyncBackend, available_backends, get_backend, register_backend

__all__ = ["LipsyncBackend", "available_backends", "get_backend", "register_backend"]
