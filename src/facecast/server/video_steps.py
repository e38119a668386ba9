"""The video steps of POST /generate: stabilise a video avatar, blend the mouth over time, put
the person on a new background, lock the feet (facecast.video, the same steps as
`facecast render --stabilize --temporal --plate --footlock`).

Blocking: run from a worker thread. Errors name the upload, never the server's file paths.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from facecast.avatar.prepare import prepare
from facecast.errors import FacecastError
from facecast.server.uploads import sniff_visual
from facecast.video.pipeline import VideoJob
from facecast.video.render import VideoRender


@dataclass(frozen=True)
class VideoRequest:
    """What the client asked for: the steps (a VideoJob; its `background` is set from the upload
    once that is on disk) and the uploaded background image or video (bytes) or None."""

    steps: VideoJob = VideoJob()
    background: bytes | None = None
    background_name: str = "background"

    @property
    def active(self) -> bool:
        return self.steps.active or self.background is not None

    def check(self) -> None:
        """Refuse a background that is not an image or video (415) before any work."""
        if self.background is not None:
            sniff_visual(self.background, f"background {self.background_name!r}")


def render_with_video_steps(request: VideoRequest, source: Path, label: str, speech, out: Path, settings,
                            backend, scratch: Path) -> Path:
    """Prepare `source` (stabilised first when asked), render `speech` into a staging file, then
    post-process it into `out`. `label` names the avatar in error messages."""
    from facecast.engine import render_to_file

    plate = scratch / f"{secrets.token_hex(8)}.background" if request.background is not None else None
    names = {str(source): f"avatar {label!r}", "--stabilize": "stabilize", "--footlock": "footlock"}
    if plate is not None:
        plate.write_bytes(request.background)
        names[str(plate)] = f"background {request.background_name!r}"
    video = VideoRender(replace(request.steps, background=plate), preset="ultrafast")
    try:
        avatar = prepare(video.source(source))
        video.attach(avatar)
        staging = render_to_file(avatar, speech, video.staging(out), settings, backend=backend)
        return video.finish(avatar, staging, out, speech.audio)
    except FacecastError as exc:
        raise _renamed(exc, names) from None
    finally:
        video.staging(out).unlink(missing_ok=True)
        if plate is not None:
            plate.unlink(missing_ok=True)


def _renamed(exc: FacecastError, names: dict[str, str]) -> FacecastError:
    """The same error with the server's file paths replaced by what the client called them."""
    text = str(exc)
    for path, label in names.items():
        text = text.replace(path, label)
    try:
        return type(exc)(text)
    except TypeError:
        return FacecastError(text)
