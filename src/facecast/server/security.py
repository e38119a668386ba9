"""ASGI middleware: the optional API token on every request, and the request-body size limit.

Both work on raw ASGI messages, so they cover every route, WebSocket, the docs and the web client.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs

BEARER = "bearer "
BODY_METHODS = ("POST", "PUT", "PATCH")


class TokenGuard:
    """Require `token` as 'Authorization: Bearer <token>' or '?token=<token>' on every request.

    A refused HTTP request gets 401 JSON; a refused WebSocket handshake is closed (HTTP 403).
    """

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if self.token is None or scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API token"})
            return
        detail = ("missing or wrong API token: send the header 'Authorization: Bearer <token>' "
                  "or the query parameter '?token=<token>' (FACECAST_API_TOKEN)")
        await send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b"Bearer")])

    def _allowed(self, scope) -> bool:
        given = request_token(scope)
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())


def request_token(scope) -> str | None:
    """The token a request carries: Authorization: Bearer header first, then ?token=."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith(BEARER):
                return text[len(BEARER):].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[0] if values else None


class BodyLimit:
    """Refuse request bodies larger than `limit` bytes with 413, by Content-Length or as they stream."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await send_json(send, 413, {"detail": self._detail(declared)}, close=True)
            return
        state = {"seen": 0, "over": False, "replaced": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.limit:
                    state["over"] = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            if state["over"]:
                if not state["replaced"] and message["type"] == "http.response.start":
                    state["replaced"] = True
                    await send_json(send, 413, {"detail": self._detail(state["seen"])}, close=True)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not state["replaced"]:
                await send_json(send, 413, {"detail": self._detail(state["seen"])}, close=True)

    def _detail(self, size: int) -> str:
        return (f"request body of {size} bytes or more is larger than the upload limit of {self.limit} bytes "
                "(FACECAST_MAX_UPLOAD_MB)")


class BodyTooLarge(Exception):
    """Raised inside the app when the body passes the limit mid-stream."""


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_json(send, status: int, body: dict, headers: list | None = None, close: bool = False) -> None:
    """Send a complete JSON response through raw ASGI."""
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": data})
