"""Shared route dependencies."""

from __future__ import annotations

from fastapi import Request, WebSocket

from facecast.server.models import ErrorOut
from facecast.server.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    """The running server's state."""
    return request.app.state.runtime


def ws_runtime(websocket: WebSocket) -> Runtime:
    return websocket.app.state.runtime


ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in {
    400: "Bad input: the detail names the field and the problem.",
    401: "Missing or wrong API token (when FACECAST_API_TOKEN is set).",
    404: "Unknown id.",
    413: "Upload larger than the limit.",
    415: "Upload is not a supported image, video or audio (checked by content).",
    422: "No face found in an avatar, or a malformed field.",
}.items()}
