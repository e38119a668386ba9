"""POST /generate: speech in, the complete MP4 out (batch use)."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from facecast.config import RenderSettings
from facecast.server.deps import ERRORS, get_runtime
from facecast.server.runtime import Runtime
from facecast.server.speech_input import build_speech, check_one_source
from facecast.server.uploads import read_upload

router = APIRouter(tags=["generate"])


@router.post("/generate", response_class=FileResponse, responses={
    **ERRORS, 200: {"content": {"video/mp4": {}}, "description": "The whole MP4 (H.264 + AAC)."}},
    summary="Render speech to a complete MP4")
async def generate(avatar_id: str | None = Form(None, description="Avatar id; the default avatar when left out."),
                   text: str | None = Form(None, description="Text to speak. Give text or audio."),
                   voice: str = Form("en", description="Text-to-speech voice, e.g. en, de, fr."),
                   audio: UploadFile | None = File(None, description="Speech audio file; checked by content."),
                   rt: Runtime = Depends(get_runtime)) -> FileResponse:
    """Render the whole clip, then answer with the file. For playback while it renders, use
    POST /sessions and GET /stream/{id}."""
    data = await read_upload(audio, rt.settings.max_upload_bytes, "audio") if audio is not None else None
    check_one_source(text, data is not None)
    name = (audio.filename or "audio") if audio is not None else "text"
    async with rt.generate_slots:
        path = await rt.run(_render, rt, avatar_id, text, data, name, voice)
    return FileResponse(path, media_type="video/mp4", filename="facecast.mp4",
                        background=BackgroundTask(path.unlink, missing_ok=True))


def _render(rt: Runtime, avatar_id, text, data, name, voice) -> Path:
    """Blocking: speech, then render_to_file into the server's scratch folder."""
    from facecast.engine import render_to_file

    _, avatar = rt.avatars.load(avatar_id)
    speech = build_speech(text, data, name, voice, rt.settings, rt.telemetry)
    scratch = rt.settings.data_dir / "renders"
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"{secrets.token_hex(8)}.mp4"
    settings = RenderSettings(fps=rt.settings.stream.fps, backend=rt.settings.backend)
    render_to_file(avatar, speech, out, settings, backend=rt.sessions.backend())
    rt.telemetry.count("generated_files")
    return out
