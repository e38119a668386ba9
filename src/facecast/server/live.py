"""Live portrait over WebSocket: the browser's webcam animates an avatar in real time.

Routes (an APIRouter; the app includes it with one line):
  GET  /live              the page: webcam beside the animated avatar
  GET  /live/live.js      its script
  GET  /live/stats        live telemetry (facecast.streaming.telemetry.live_stats() of the runtime's
                          live_telemetry)
  WS   /ws/live           ?avatar=<id> (default: the default avatar, the demo astronaut)
                          &mode=relative|absolute
Protocol of /ws/live:
  client -> server  binary: one camera frame, JPEG (PNG/WebP also decode), up to 30 per second
                    text: {"type": "pause"} | {"type": "resume"} | {"type": "reset"} (the next
                          frame becomes the neutral pose) | {"type": "neutral"} (same) |
                          {"type": "mode", "mode": "relative" | "absolute"} | {"type": "ping"}
  server -> client  binary: one animated avatar frame, JPEG, per animated camera frame
                    text: {"type": "ready", "avatar": {...}, "mode": ...}, {"type": "state", ...},
                          {"type": "warning", "code": "no_face" | "flood", "message": ...},
                          {"type": "info", "code": "face_found", ...}, {"type": "pong", "stats": ...},
                          {"type": "error", "code": "bad_frame" | "bad_message" | "avatar" | ..., "message": ...}
Only the newest camera frame waits for the animator: a client that sends too fast gets fresh frames
back with stale ones dropped, and the server's memory stays bounded. Errors are messages; the loop
keeps running (an unknown avatar ends the connection with code 1008 after its error message).
"""

from __future__ import annotations

import asyncio
import html
import time
from importlib import resources
from urllib.parse import quote

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response

from facecast.portrait.session import LiveFrame, LiveMessage, LiveSession
from facecast.server.security import request_token
from facecast.streaming.telemetry import live_stats

router = APIRouter(tags=["live portrait"])

CLOSE_POLICY = 1008  # WebSocket close code: the request cannot be served (unknown avatar, bad mode)
JOIN_TIMEOUT_S = 5.0  # s to wait for a session's worker thread after the client left
TOKEN_MARK = "{{token_query}}"


def _static(name: str) -> str:
    return resources.files("facecast.server").joinpath("static", name).read_text(encoding="utf-8")


FILES = {name: _static(name) for name in ("live.html", "live.js")}  # read once, at import


@router.get("/live", response_class=HTMLResponse, include_in_schema=False)
async def live_page(request: Request) -> HTMLResponse:
    """The live-portrait page; a ?token= it was opened with is passed on to its script."""
    token = request_token(request.scope)
    query = f"?token={html.escape(quote(token, safe=''))}" if token else ""
    page = FILES["live.html"].replace(TOKEN_MARK, query)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/live/live.js", include_in_schema=False)
async def live_script() -> Response:
    return Response(FILES["live.js"], media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


@router.get("/live/stats", summary="Live portrait telemetry")
async def live_telemetry(request: Request) -> dict:
    """Per-loop (receive -> send) and per-stage (decode, landmarks, warp, encode) latency
    p50/p95/p99 in ms, delivered frames/s, queue depths and drops, per running session."""
    return live_stats(request.app.state.runtime.live_telemetry)


def avatar_loader(websocket: WebSocket, ref: str | None):
    """A blocking () -> Avatar for `ref`: through the server's avatar store when the app has one
    (its public ids; None = its default avatar), else by cache id or file (None = the demo)."""
    runtime = getattr(websocket.app.state, "runtime", None)
    store = getattr(runtime, "avatars", None)
    if store is not None:
        return lambda: _with_public_id(*store.load(ref))
    from facecast.portrait.source import load_avatar

    return lambda: load_avatar(ref)


def _with_public_id(avatar_id: str, avatar):
    """The avatar under the id the client knows (the store's), not its internal cache key: what `ready` reports."""
    import dataclasses

    return dataclasses.replace(avatar, id=avatar_id)


@router.websocket("/ws/live")
async def live_socket(websocket: WebSocket):
    await websocket.accept()
    params = websocket.query_params
    try:
        session = LiveSession(avatar_loader(websocket, params.get("avatar") or None),
                              websocket.app.state.runtime.live_telemetry,
                              mode=params.get("mode", "relative"), label=params.get("avatar") or "default")
    except ValueError as exc:
        await websocket.send_json({"type": "error", "code": "bad_request", "message": str(exc)})
        await websocket.close(CLOSE_POLICY, str(exc)[:120])
        return
    session.start()
    sender = asyncio.create_task(_send_loop(websocket, session))
    try:
        await _receive_loop(websocket, session, sender)
    finally:
        session.close()
        sender.cancel()  # the client left (or the sender ended): nothing more goes out
        await asyncio.gather(sender, return_exceptions=True)
        await websocket.app.state.runtime.run_quick(session.join, JOIN_TIMEOUT_S)


async def _receive_loop(websocket: WebSocket, session: LiveSession, sender: asyncio.Task) -> None:
    """Hand client messages to the session until the client leaves or the sender stops."""
    receiving = None
    try:
        while True:
            receiving = asyncio.ensure_future(websocket.receive())
            done, _ = await asyncio.wait({receiving, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receiving not in done:
                return  # the session ended (e.g. an unknown avatar): stop listening
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                session.submit(message["bytes"], time.perf_counter())
            elif message.get("text") is not None:
                session.control(message["text"])
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        if receiving is not None and not receiving.done():
            receiving.cancel()


async def _send_loop(websocket: WebSocket, session: LiveSession) -> None:
    """Send the session's output (animated frames and messages, in its order) until it ends;
    record receive -> send latency."""
    try:
        while (item := await session.output.get()) is not None:
            if isinstance(item, LiveFrame):
                await websocket.send_bytes(item.jpeg)
                session.stats.record_sent((time.perf_counter() - item.received_s) * 1e3)
            elif isinstance(item, LiveMessage):
                await websocket.send_text(item.text())
                if item.close:
                    await websocket.close(CLOSE_POLICY, item.body.get("message", "")[:120])
                    return
    except (WebSocketDisconnect, RuntimeError):
        return  # the client left while we were sending
