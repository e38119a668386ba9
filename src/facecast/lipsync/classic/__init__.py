"""The classic CPU backend: mouth parameters -> a mesh-driven warp of the lower face.

backend.py: the LipsyncBackend; rig.py: face geometry of a source frame in face units;
fields.py: displacement fields (mouth, blink, head sway) on that geometry. The dense warp and
the inner-mouth painter it uses live in facecast.face (the live portrait uses them too).
"""

from __future__ import annotations

from facecast.lipsync.base import NoOptions
from facecast.lipsync.classic.backend import ClassicBackend

Options = NoOptions  # the classic backend takes no options

__all__ = ["ClassicBackend", "Options", "create"]


def create(options: Options) -> ClassicBackend:
    """Factory of the registry: get_backend("classic")."""
    return ClassicBackend()
