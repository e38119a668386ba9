"""create_app(settings): the FastAPI application, assembled from small routers.

Models and the default avatar load once at start (lifespan), with a warm-up. Adding a router is
one line in ROUTERS (e.g. the live-portrait router: `app.include_router(live.router)`).
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI

from facecast import __version__
from facecast.server.errors import install_handlers
from facecast.server import live
from facecast.server.routes import avatars, docs, generate, live_audio, sessions, system, web, webrtc
from facecast.server.runtime import Runtime
from facecast.server.security import BodyLimit, TokenGuard
from facecast.server.settings import ServerSettings

ROUTERS = (system.router, avatars.router, generate.router, sessions.router, webrtc.router, live_audio.router, web.router,
           live.router, docs.router)

DESCRIPTION = """Real-time talking avatars. Upload a portrait (or use the default astronaut), then
speak through it: `POST /generate` returns a whole MP4; `POST /sessions` + `GET /stream/{id}` stream a
fragmented MP4 (H.264 + AAC) while it is generated; live sessions take 16-bit PCM over
`/ws/sessions/{id}/audio`. When FACECAST_API_TOKEN is set, every request needs
`Authorization: Bearer <token>` (or `?token=`; a page opened with `?token=`, this one included, gets an
HttpOnly cookie that authenticates its own same-origin requests)."""


def create_app(settings: ServerSettings | None = None, home: str = "") -> FastAPI:
    """The application; nothing heavy happens until it starts (lifespan). `home`: this process's
    name among several serving one API (a Ray Serve replica), which prefixes its session ids."""
    settings = settings or ServerSettings.from_env()
    runtime = Runtime(settings, home)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    protocol = live_audio.protocol_markdown(settings.max_chunk_bytes, settings.stream.max_queued_s)
    app = FastAPI(title="facecast", version=__version__, description=f"{DESCRIPTION}\n\n{protocol}",
                  lifespan=lifespan, docs_url=None, redoc_url=None)  # routes.docs serves both, with local assets
    app.state.runtime = runtime
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_OVERHEAD)
    app.add_middleware(TokenGuard, token=settings.token)
    app.add_middleware(RequestMeter, telemetry=runtime.telemetry)
    return app


FORM_OVERHEAD = 64 * 1024  # bytes of multipart framing and small fields allowed beyond an upload's limit


class RequestMeter:
    """Stamp each request with the monotonic time it arrived (scope state 'received') and count
    responses by class (http_2xx, http_4xx, http_5xx in /stats counters)."""

    def __init__(self, app, telemetry):
        self.app, self.telemetry = app, telemetry

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["received"] = time.monotonic()

        async def counted(message):
            if message["type"] == "http.response.start":
                self.telemetry.count(f"http_{message['status'] // 100}xx")
            await send(message)

        await self.app(scope, receive, counted)
