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
from facecast.server.video_steps import VideoRequest, render_with_video_steps
from facecast.video.pipeline import VideoJob

router = APIRouter(tags=["generate"])


@router.post("/generate", response_class=FileResponse, responses={
    **ERRORS, 200: {"content": {"video/mp4": {}}, "description": "The whole MP4 (H.264 + AAC)."}},
    summary="Render speech to a complete MP4")
async def generate(avatar_id: str | None = Form(None, description="Avatar id; the default avatar when left out."),
                   text: str | None = Form(None, description="Text to speak. Give text or audio."),
                   voice: str = Form("en", description="Text-to-speech voice, e.g. en, de, fr."),
                   audio: UploadFile | None = File(None, description="Speech audio file; checked by content."),
                   stabilize: bool = Form(False, description="Video avatars: stabilise the camera for the face "
                                                             "work, then put the camera motion back."),
                   temporal: bool = Form(False, description="Blend the mouth region with the previous frame "
                                                            "along the optical flow (less flicker)."),
                   footlock: bool = Form(False, description="Full-body video avatars: pin the feet while they "
                                                            "touch the ground."),
                   background: UploadFile | None = File(None, description="A new background behind the person: "
                                                                          "an image or a video (loops)."),
                   rt: Runtime = Depends(get_runtime)) -> FileResponse:
    """Render the whole clip, then answer with the file. For playback while it renders, use
    POST /sessions and GET /stream/{id}. The video options run the same steps as
    `facecast render --stabilize --temporal --plate --footlock` (docs/video.md)."""
    data = await read_upload(audio, rt.settings.max_upload_bytes, "audio") if audio is not None else None
    check_one_source(text, data is not None)
    name = (audio.filename or "audio") if audio is not None else "text"
    video = VideoRequest(VideoJob(stabilize=stabilize, temporal=temporal, footlock=footlock),
                         await read_upload(background, rt.settings.max_upload_bytes, "background")
                         if background is not None else None,
                         (background.filename or "background") if background is not None else "background")
    video.check()
    async with rt.generate_slots:
        path = await rt.run(_render, rt, avatar_id, text, data, name, voice, video)
    return FileResponse(path, media_type="video/mp4", filename="facecast.mp4",
                        background=BackgroundTask(path.unlink, missing_ok=True))


def _render(rt: Runtime, avatar_id, text, data, name, voice, video: VideoRequest) -> Path:
    """Blocking: speech, then render_to_file (and the video steps) into the server's scratch folder."""
    from facecast.engine import render_to_file

    _, avatar = rt.avatars.load(avatar_id)
    speech = build_speech(text, data, name, voice, rt.settings, rt.telemetry)
    scratch = rt.settings.data_dir / "renders"
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f"{secrets.token_hex(8)}.mp4"
    settings = RenderSettings(fps=rt.settings.stream.fps, backend=rt.settings.backend)
    if video.active:
        source, record = rt.avatars.source(avatar_id)
        render_with_video_steps(video, source, record["name"], speech, out, settings, rt.sessions.backend(), scratch)
        rt.telemetry.count("generated_files_video_steps")
    else:
        render_to_file(avatar, speech, out, settings, backend=rt.sessions.backend())
    rt.telemetry.count("generated_files")
    return out
