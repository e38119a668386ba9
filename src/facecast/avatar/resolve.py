"""What an `--avatar` argument names: an image or video file, or the id of a prepared avatar.

One resolver for every command (render, animate, live sessions): a file is prepared on first use
(then loaded from the cache), an id is loaded from the cache. A folder, a missing file and an unknown
id each get their own message.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from facecast.avatar.cache import KEY_PATTERN, AvatarCache
from facecast.avatar.model import Avatar
from facecast.config import PrepareSettings
from facecast.errors import InvalidArgument, NotFound

Progress = Callable[[int, int], None]


def avatar_file(ref: str | Path, option: str = "--avatar") -> Path | None:
    """The file `ref` names, or None when it is a prepared avatar's id (24 hex digits, in the cache).

    Raises InvalidArgument for a folder and NotFound for a name that is neither a file nor a known id.
    """
    text = str(ref)
    path = Path(ref)
    if path.is_dir():
        raise InvalidArgument(f"{option} {text!r} is a folder; give an image or video file, or a prepared "
                              "avatar id (printed by `facecast prepare`)")
    if path.is_file():
        return path
    if KEY_PATTERN.match(text):
        if AvatarCache().has(text):
            return None
        raise NotFound(f"{option} {text!r}: no prepared avatar has this id (and no such file); "
                       "`facecast prepare FILE` prints the id of a file")
    if path.exists():
        raise InvalidArgument(f"{option} {text!r} is not a regular file")
    raise NotFound(f"{option} {text!r}: no such file, and not a prepared avatar id")


def resolve_avatar(ref: str | Path, settings: PrepareSettings = PrepareSettings(), *, force: bool = False,
                   progress: Progress | None = None, option: str = "--avatar",
                   notice: Callable[[str], None] | None = None) -> Avatar:
    """The avatar `ref` names: a file prepared with `settings` (cached), or a prepared avatar by id.

    notice: called with a one-line warning (default: printed to stderr), e.g. for a video avatar longer
    than settings.max_video_seconds, of which only the first part is used.
    """
    from facecast.avatar.prepare import prepare

    path = avatar_file(ref, option)
    if path is None:
        if force or settings != PrepareSettings():
            raise InvalidArgument(f"{option} {str(ref)!r} is a prepared avatar id; preparation options "
                                  "(--face, --max-size, --force) apply to files only")
        return AvatarCache().load(str(ref))
    warn_long_video(path, settings.max_video_seconds, notice)
    return prepare(path, settings, force=force, progress=progress)


def warn_long_video(path: Path, limit_s: float, notice: Callable[[str], None] | None = None) -> float | None:
    """Say (through `notice`, default stderr) when the video `path` is longer than `limit_s` and will be cut.

    Returns the video's length in seconds (None for an image or an unreadable length).
    """
    seconds = video_seconds(path)
    if seconds is not None and seconds > limit_s + 0.05:
        message = (f"facecast: warning: {path} is {seconds:.1f} s long; a video avatar uses its first "
                   f"{limit_s:g} s (the video avatar length limit)")
        (notice or (lambda text: print(text, file=sys.stderr)))(message)
    return seconds


def video_seconds(path: Path) -> float | None:
    """Length of the first video stream of `path` in seconds from its header, None for an image or when
    the container does not say. Reads no frame."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
            return None
    except (av.error.FFmpegError, OSError, ValueError):
        return None
