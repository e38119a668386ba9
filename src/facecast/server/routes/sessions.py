"""Streaming sessions: create (clip or live), inspect, stop, add speech, interrupt, and the stream."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from facecast.errors import InvalidArgument
from facecast.server.deps import ERRORS, get_runtime
from facecast.errors import Conflict, Unavailable
from facecast.server.models import DeletedOut, ErrorOut, SessionListOut, SessionOut
from facecast.server.runtime import Runtime
from facecast.server.speech_input import build_speech, check_one_source
from facecast.server.uploads import read_upload
from facecast.streaming.session import Session
from facecast.transports.fmp4.http import Fmp4Reader

log = logging.getLogger(__name__)
router = APIRouter(tags=["sessions"])

RATE_RANGE = (8000, 96000)  # Hz accepted for sample_rate
BUSY = {409: {"model": ErrorOut, "description": "Not a live session."},
        503: {"model": ErrorOut, "description": "Too much speech is queued (FACECAST_MAX_QUEUED_S)."}}

TEXT = Form(None, description="Text to speak (offline text-to-speech). Give text or audio.")
VOICE = Form("en", description="Text-to-speech voice, e.g. en, en-us, de, fr.")
AUDIO = File(None, description="Speech audio file (WAV, MP3, M4A, OGG, FLAC, WebM, ...); checked by content.")


def session_out(session: Session) -> dict:
    """A session's public state, with its URLs."""
    return {**session.info(), "stream_url": f"/stream/{session.id}", "webrtc_url": f"/sessions/{session.id}/webrtc",
            "audio_ws_url": f"/ws/sessions/{session.id}/audio"}


@router.post("/sessions", response_model=SessionOut, status_code=201, responses=ERRORS,
             summary="Start a session (a clip, or a live session)")
async def create_session(request: Request, avatar_id: str | None = Form(None, description="Avatar id; the default "
                                                                                             "avatar when left out."),
                         text: str | None = TEXT, voice: str = VOICE, audio: UploadFile | None = AUDIO,
                         live: bool | None = Form(None, description="Real-time session that takes live audio over "
                                                                     "WebSocket and idles between utterances. Default: "
                                                                     "true when neither text nor audio is given."),
                         sample_rate: int | None = Form(None, description="Audio rate of the stream in Hz (live; "
                                                                           "default 48000)."),
                         rt: Runtime = Depends(get_runtime)) -> dict:
    """Start generating at once; read the video from `stream_url` (fragmented MP4, H.264 + AAC).
    A clip (text or audio) ends with its speech; a live session runs until deleted or unread."""
    received = request.scope.get("state", {}).get("received", time.monotonic())
    data = await read_upload(audio, rt.settings.max_upload_bytes, "audio") if audio is not None else None
    check_one_source(text, data is not None, required=False)
    has_speech = bool(text) or data is not None
    live = (not has_speech) if live is None else live
    if not live and not has_speech:
        raise InvalidArgument("a clip session needs a 'text' field or an 'audio' file (or live=true)")
    _check_rate(sample_rate)
    avatar_id, avatar, speech = await rt.run_quick(_inputs, rt, avatar_id, text, data, audio, voice, has_speech)
    rate = sample_rate or (rt.settings.stream.live_rate if live else speech.audio.sample_rate)
    session = rt.sessions.create(avatar, avatar_id, live=live, sample_rate=rate, first=speech, created_at=received)
    return session_out(session)


def _inputs(rt: Runtime, avatar_id, text, data, audio, voice, has_speech):
    """(avatar id, avatar, speech or None): blocking loading and synthesis/decoding."""
    avatar_id, avatar = rt.avatars.load(avatar_id)
    speech = None
    if has_speech:
        name = (audio.filename or "audio") if audio is not None else "text"
        speech = build_speech(text, data, name, voice, rt.settings, rt.telemetry)
    return avatar_id, avatar, speech


def _check_rate(rate: int | None) -> None:
    if rate is not None and not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise InvalidArgument(f"sample_rate={rate!r} must be in {RATE_RANGE[0]}..{RATE_RANGE[1]} Hz")


@router.get("/sessions", response_model=SessionListOut, summary="List sessions")
async def list_sessions(rt: Runtime = Depends(get_runtime)) -> dict:
    return {"sessions": [session_out(s) for s in rt.sessions.all()]}


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=ERRORS, summary="One session")
async def get_session(session_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    return session_out(rt.sessions.get(session_id))


@router.delete("/sessions/{session_id}", response_model=DeletedOut, responses=ERRORS, summary="Stop a session")
async def delete_session(session_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    """Stop generating; readers get what was made, then their stream ends."""
    session = rt.sessions.remove(session_id)
    await rt.run_quick(session.join, 5.0)
    return {"deleted": session_id}


@router.post("/sessions/{session_id}/say", response_model=SessionOut, responses={**ERRORS, **BUSY},
             summary="Queue speech on a live session")
async def say(session_id: str, text: str | None = TEXT, voice: str = VOICE, audio: UploadFile | None = AUDIO,
              rt: Runtime = Depends(get_runtime)) -> dict:
    """Queue text or an audio file after what the live session is saying. At most
    FACECAST_MAX_QUEUED_S seconds (default 60) of speech may wait: beyond it the answer is 503."""
    session = _live_session(rt, session_id)
    data = await read_upload(audio, rt.settings.max_upload_bytes, "audio") if audio is not None else None
    check_one_source(text, data is not None)
    name = (audio.filename or "audio") if audio is not None else "text"
    speech = await rt.run_quick(build_speech, text, data, name, voice, rt.settings, rt.telemetry)
    _queue_speech(session, speech, name, rt.settings.stream.max_queued_s)
    return session_out(session)


def _queue_speech(session: Session, speech, name: str, limit_s: float) -> None:
    """session.say(speech), or an error naming the limit: 400 longer than it alone, 503 when full."""
    seconds = speech.audio.duration
    if seconds > limit_s:
        raise InvalidArgument(f"{name}: {seconds:.1f} s of speech is longer than the {limit_s:g} s a live session "
                              "queues at most (FACECAST_MAX_QUEUED_S); send it in shorter parts")
    if session.say(speech):
        return
    waiting = session.queued_s
    if waiting + seconds <= limit_s:  # the seconds fit: the command queue itself is full (a PCM flood)
        raise Unavailable(f"session {session.id!r}: too many commands are waiting; try again shortly")
    raise Unavailable(f"session {session.id!r}: {waiting:.1f} s of speech is waiting and {name} adds "
                      f"{seconds:.1f} s, over the limit of {limit_s:g} s (FACECAST_MAX_QUEUED_S); try again "
                      "once more of it has been spoken, or interrupt")


@router.post("/sessions/{session_id}/interrupt", response_model=SessionOut, responses=ERRORS,
             summary="Interrupt a live session")
async def interrupt(session_id: str, rt: Runtime = Depends(get_runtime)) -> dict:
    """Drop queued speech at once; the avatar closes its mouth and idles."""
    session = _live_session(rt, session_id)
    session.interrupt()
    return session_out(session)


def _live_session(rt: Runtime, session_id: str) -> Session:
    session = rt.sessions.get(session_id)
    if not session.live:
        raise Conflict(f"session {session_id!r} plays a clip; create a live session (live=true) to add speech")
    return session


@router.get("/stream/{session_id}", response_class=StreamingResponse, responses={
    **ERRORS, 200: {"content": {"video/mp4": {}}, "description": "Fragmented MP4 (H.264 + AAC): an init segment, "
                    "then moof+mdat segments of at most 200 ms as frames are made, a keyframe every second."},
    410: {"description": "The session ended before its first frame."}}, summary="The session's video stream")
async def stream(session_id: str, rt: Runtime = Depends(get_runtime)) -> StreamingResponse:
    """The stream as it is generated. The first reader gets it from the start; later readers
    (a reconnect, a second viewer) join at the latest keyframe. Content-Type names the codecs."""
    session, sink = rt.sessions.fmp4(session_id)
    reader = Fmp4Reader(sink, session.id)
    await reader.open(rt.settings.first_frame_timeout_s)
    return StreamingResponse(reader.body(), media_type=sink.mime,
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
