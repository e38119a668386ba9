"""Session ids that name the replica holding the session, and the session id in a request path.

A replica's sessions have ids `<replica>.<token>` (`replica`: Ray Serve's unique replica id,
letters and digits; `token`: secrets.token_urlsafe, which never contains a dot). Every route of a
session carries its id in the path, so a router needs nothing the client must set: a browser can
neither add headers to a WebSocket nor to a <video> element's request.
"""

from __future__ import annotations

import re

SEPARATOR = "."
# /sessions/{id}, /sessions/{id}/say|interrupt|webrtc[/peer], /stream/{id}, /ws/sessions/{id}/audio
_SESSION_PATH = re.compile(r"^/(?:ws/sessions|sessions|stream)/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)(?:/|$)")


def session_in_path(path: str) -> str | None:
    """The replica-named session id in a request path, or None (e.g. POST /sessions, /stats)."""
    found = _SESSION_PATH.match(path or "")
    return found.group(1) if found else None


def home_of(session_id: str | None) -> str | None:
    """The replica named in a session id (None for a plain id, or none)."""
    if not session_id or SEPARATOR not in session_id:
        return None
    return session_id.split(SEPARATOR, 1)[0] or None


def home_in_path(path: str) -> str | None:
    """The replica a request for this path must reach, or None when any replica will do."""
    return home_of(session_in_path(path))
