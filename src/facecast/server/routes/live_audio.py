"""WebSocket /ws/sessions/{id}/audio: live 16-bit PCM from a voice agent into a live session.

The protocol is described by protocol_markdown() below; that text is part of the OpenAPI
description (/docs), since OpenAPI has no WebSocket routes. A full queue holds the reader back
(TCP back-pressure) instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from facecast.errors import FacecastError, InvalidArgument
from facecast.server.runtime import Runtime
from facecast.streaming.queues import Channel
from facecast.streaming.session import Session

router = APIRouter(tags=["sessions"])

DEFAULT_RATE = 16000  # Hz
RATE_RANGE = (8000, 96000)  # Hz
ROOM_CHECK_S = 1.0  # s: a pusher held back re-checks at least this often (the session rings on room)
CLOSE_POLICY = 1008  # WebSocket close code: policy violation (bad id, rate, kind)
WS_FRAME_SLACK = 1024  # bytes: uvicorn's message limit is the chunk limit plus this

def protocol_markdown(max_chunk_bytes: int, max_queued_s: float) -> str:
    """The WebSocket protocol as markdown for the OpenAPI description, with the server's limits."""
    chunk, frame_limit = _size(max_chunk_bytes), _size(max_chunk_bytes + WS_FRAME_SLACK)
    return f"""## Live audio: `WS /ws/sessions/{{session_id}}/audio?sample_rate=16000`

OpenAPI lists no WebSockets, so this one is described here. It feeds a **live** session (`POST /sessions`
with `live=true`, or with neither text nor audio) with speech as a voice agent produces it; watch the
result on the session's `stream_url`. With FACECAST_API_TOKEN set, pass `?token=` (or the
`Authorization: Bearer` header) here too. One audio connection per session at a time.

- **At open**: `sample_rate` (query, Hz, {RATE_RANGE[0]}..{RATE_RANGE[1]}, default {DEFAULT_RATE}) is the rate of the
  PCM you send; the server resamples it to the stream's rate. It answers
  `{{"type": "ready", "session": "<id>", "sample_rate": <hz>}}`.
- **Binary messages** (client to server): mono signed 16-bit little-endian PCM at that rate, any size
  up to {chunk} (FACECAST_MAX_UPLOAD_MB does not apply). An odd trailing byte waits for the next
  message. A larger message is refused with an `error` and dropped, and the connection stays; one
  over the server's frame limit ({frame_limit}) closes the connection with code 1009 (message too big).
  Consecutive chunks form one utterance; 0.5 s without audio ends it, as `end` does.
- **Text messages** (client to server), JSON objects, each answered:

| send | reply | effect |
|---|---|---|
| `{{"type": "end"}}` | `{{"type": "ended"}}` | end of the utterance: its last frames are shown |
| `{{"type": "interrupt"}}` | `{{"type": "interrupted"}}` | drop queued audio and frames at once; the mouth closes |
| `{{"type": "ping"}}` | `{{"type": "pong"}}` | |

- **Errors**: `{{"type": "error", "detail": "..."}}`. A malformed or unknown message, or an oversize
  chunk, is answered and the connection stays open. An unknown session id, a bad `sample_rate`, a
  clip session or a second connection is answered, then closed with code {CLOSE_POLICY}. Audio sent
  after the session has ended is answered with an error.
- **Back-pressure**: while more than {max_queued_s:g} s of speech (FACECAST_MAX_QUEUED_S) wait to be
  shown, the server stops reading the socket instead of buffering; sends then block in TCP.
"""


def _size(count: int) -> str:
    """Bytes for people: 1 MiB, 1025 KiB, 300 bytes."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


@router.websocket("/ws/sessions/{session_id}/audio")
async def live_audio(websocket: WebSocket, session_id: str):
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        session, rate = _open(rt, session_id, websocket.query_params.get("sample_rate"))
    except FacecastError as exc:
        await _refuse(websocket, str(exc))
        return
    if session.audio_connected:
        await _refuse(websocket, f"session {session_id!r} already has an audio connection")
        return
    session.audio_connected = True
    try:
        await websocket.send_json({"type": "ready", "session": session.id, "sample_rate": rate})
        await _receive_loop(websocket, session, rate, rt.settings.max_chunk_bytes)
    except WebSocketDisconnect:
        pass
    finally:
        session.audio_connected = False


def _open(rt: Runtime, session_id: str, rate_text: str | None) -> tuple[Session, int]:
    """The live session and the PCM rate of a new connection; FacecastError naming the problem."""
    session = rt.sessions.get(session_id)
    if not session.live:
        raise InvalidArgument(f"session {session_id!r} plays a clip; live audio needs a live session")
    try:
        rate = int(rate_text) if rate_text is not None else DEFAULT_RATE
    except ValueError:
        raise InvalidArgument(f"sample_rate={rate_text!r} is not an integer (Hz)") from None
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise InvalidArgument(f"sample_rate={rate} must be in {RATE_RANGE[0]}..{RATE_RANGE[1]} Hz")
    return session, rate


async def _refuse(websocket: WebSocket, detail: str) -> None:
    await websocket.send_json({"type": "error", "detail": detail})
    await websocket.close(code=CLOSE_POLICY, reason=detail[:120])


async def _receive_loop(websocket: WebSocket, session: Session, rate: int, max_bytes: int) -> None:
    carry = b""  # an odd trailing byte waits for the next chunk
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            carry = await _audio(websocket, session, carry + message["bytes"], rate, max_bytes)
        elif message.get("text") is not None:
            await _control(websocket, session, message["text"])
            if session.state in ("stopped", "failed", "finished"):
                await websocket.close()
                return


async def _audio(websocket: WebSocket, session: Session, data: bytes, rate: int, max_bytes: int) -> bytes:
    """Queue whole 16-bit samples of `data`; returns the odd byte left over."""
    if len(data) > max_bytes:
        await websocket.send_json({"type": "error", "detail": f"audio chunk of {len(data)} bytes is over the limit "
                                                              f"of {max_bytes} bytes ({_size(max_bytes)}); it was "
                                                              "dropped, send smaller chunks"})
        return b""
    whole = len(data) // 2 * 2
    if whole:
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        room = Channel(maxsize=1)  # rung by the session when queued speech drops or it ends
        while True:
            session.notify_room(room)
            if session.push_pcm(samples, rate):
                break
            if not session.alive:
                await websocket.send_json({"type": "error", "detail": "the session has ended"})
                return b""
            try:
                await asyncio.wait_for(room.get(), ROOM_CHECK_S)
            except TimeoutError:
                pass
    return data[whole:]


async def _control(websocket: WebSocket, session: Session, text: str) -> None:
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError):
        await websocket.send_json({"type": "error", "detail": "control messages are JSON objects like "
                                                              '{"type": "end"} or {"type": "interrupt"}'})
        return
    if kind == "end":
        session.end_utterance()
        await websocket.send_json({"type": "ended"})
    elif kind == "interrupt":
        session.interrupt()
        await websocket.send_json({"type": "interrupted"})
    elif kind == "ping":
        await websocket.send_json({"type": "pong"})
    else:
        await websocket.send_json({"type": "error", "detail": f"unknown message type {kind!r}; "
                                                              "use end, interrupt or ping"})
