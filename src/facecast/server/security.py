"""ASGI middleware: the optional API token on every request, and the request-body size limit.

Both work on raw ASGI messages, so they cover every route, WebSocket, the docs and the web client.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import parse_qs, urlsplit

BEARER = "bearer "
BODY_METHODS = ("POST", "PUT", "PATCH")
COOKIE = "facecast_auth"  # cookie set by a request that authenticated with ?token=
COOKIE_CONTEXT = b"facecast API token cookie v1"  # HMAC message: the cookie is HMAC-SHA256(token, this)
MIN_TOKEN_CHARS = 8


def clean_token(value: str | None) -> str | None:
    """The API token as configured, stripped of surrounding spaces and newlines (what `$(cat tokenfile)`
    leaves), or None when none is configured. The one place tokens are checked.

    Raises InvalidArgument for a token that is empty or only spaces (a failed `$(cat tokenfile)`: that
    must not switch authentication off), shorter than MIN_TOKEN_CHARS, or holding spaces or control
    characters inside (an HTTP header cannot carry it intact).
    """
    from facecast.errors import InvalidArgument

    if value is None:
        return None
    token = str(value).strip()
    if not token:
        raise InvalidArgument("FACECAST_API_TOKEN is set but empty (or only spaces): set a token of at least "
                              f"{MIN_TOKEN_CHARS} characters, or unset the variable to run without one")
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidArgument(f"FACECAST_API_TOKEN must be at least {MIN_TOKEN_CHARS} characters long")
    if any(ch.isspace() or not ch.isprintable() or ord(ch) > 126 for ch in token):
        raise InvalidArgument("FACECAST_API_TOKEN holds spaces, control or non-ASCII characters: use printable "
                              "ASCII only (a Bearer header must carry it unchanged)")
    return token


class TokenGuard:
    """Require `token` on every request: 'Authorization: Bearer <token>', '?token=<token>', or the cookie
    that a request with a valid '?token=' was answered with.

    The cookie (COOKIE, HttpOnly, SameSite=Strict, Path=/; Secure over https) holds an HMAC of the token,
    not the token, and lets a page opened with ?token= (/docs, /, /live) make its own follow-up requests
    (Swagger UI fetching /openapi.json). It counts only on same-origin requests: no Origin header, or one
    naming this Host. A refused HTTP request gets 401 JSON; a refused WebSocket handshake is closed (HTTP 403).
    """

    def __init__(self, app, token: str | None):
        self.app, self.token = app, clean_token(token)
        token = self.token
        self.cookie = cookie_digest(token) if token is not None else None

    async def __call__(self, scope, receive, send):
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
        elif self._matches(header_token(scope)):
            await self.app(scope, receive, send)
        elif self._matches(query_token(scope)):
            await self.app(scope, receive, self._setting_cookie(scope, send))
        elif self._cookie_allowed(scope):
            await self.app(scope, receive, send)
        else:
            await self._refuse(scope, send)

    def _matches(self, given: str | None) -> bool:
        """Whether `given` is the token (constant-time)."""
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    def _cookie_allowed(self, scope) -> bool:
        """Whether a same-origin request carries the token's cookie (constant-time)."""
        given = cookie_value(scope, COOKIE)
        return (given is not None and same_origin(scope)
                and secrets.compare_digest(given.encode(), self.cookie.encode()))

    def _setting_cookie(self, scope, send):
        """`send`, adding the token cookie to an HTTP response's headers."""
        if scope["type"] != "http":
            return send
        attributes = "; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if scope.get("scheme") == "https" else "")
        header = (b"set-cookie", f"{COOKIE}={self.cookie}{attributes}".encode())

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        return with_cookie

    async def _refuse(self, scope, send) -> None:
        """Close a WebSocket handshake (1008) or answer 401 JSON."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API token"})
            return
        detail = ("missing or wrong API token: send the header 'Authorization: Bearer <token>' "
                  "or the query parameter '?token=<token>' (FACECAST_API_TOKEN)")
        await send_json(send, 401, {"detail": detail}, [(b"www-authenticate", b"Bearer")])


def cookie_digest(token: str) -> str:
    """The cookie value for `token`: hex HMAC-SHA256 keyed by the token (a new token voids old cookies)."""
    return hmac.new(token.encode(), COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def request_token(scope) -> str | None:
    """The token a request carries: Authorization: Bearer header first, then ?token=."""
    given = header_token(scope)
    return given if given is not None else query_token(scope)


def header_token(scope) -> str | None:
    """The token of an 'Authorization: Bearer <token>' header, if any."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith(BEARER):
                return text[len(BEARER):].strip()
    return None


def query_token(scope) -> str | None:
    """The first ?token= of the query string, if any."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def cookie_value(scope, name: str) -> str | None:
    """The value of cookie `name` in the request's Cookie headers, if any."""
    for header, value in scope.get("headers", ()):
        if header != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            key, sep, text = pair.strip().partition("=")
            if sep and key == name:
                return text
    return None


def same_origin(scope) -> bool:
    """Whether the request has no Origin header or one whose host:port is the request's Host."""
    origin = host = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if origin is None:
        return True
    try:
        return host is not None and urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:  # a malformed Origin
        return False


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
