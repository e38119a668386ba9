"""Server settings: a frozen dataclass, read from FACECAST_-prefixed environment variables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from facecast.audio.tts import MAX_TEXT_CHARS
from facecast.config import cache_dir, env
from facecast.errors import InvalidArgument
from facecast.server.security import clean_token
from facecast.streaming.session import StreamSettings

MB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """Everything `facecast serve` can be told.

    host/port: where to listen (loopback unless told otherwise); token: API token required on every
    request when set (FACECAST_API_TOKEN); max_upload_bytes: largest accepted request body
    (FACECAST_MAX_UPLOAD_MB); data_dir: uploaded sources and the avatar index, outside any web root
    (FACECAST_SERVER_DIR, default <cache>/server).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_bytes: int = 50 * MB
    data_dir: Path = field(default_factory=lambda: cache_dir() / "server")
    backend: str = "classic"
    max_sessions: int = 16  # sessions generating at once; more are refused (503)
    session_grace_s: float = 10.0  # s a session lives on without readers
    first_frame_timeout_s: float = 30.0  # s a reader waits for a stream's first frame
    max_text_chars: int = MAX_TEXT_CHARS  # the CLI's limit too (facecast.audio.tts.check_text)
    max_speech_s: float = 600.0  # s of uploaded speech at most
    max_chunk_bytes: int = 1 * MB  # largest live PCM message
    generate_concurrency: int = 2  # whole-file renders (POST /generate) at once
    workers: int = 4  # threads for long blocking work (whole-file renders, avatar preparation)
    quick_workers: int = 4  # threads for short latency-critical work (a session's speech, joins)
    warmup: bool = True
    ice_servers: tuple[dict, ...] = ()  # STUN/TURN for WebRTC peers (FACECAST_ICE_SERVERS, JSON); none by default
    max_peers: int = 8  # WebRTC viewers of one session at most (FACECAST_MAX_PEERS)
    stream: StreamSettings = field(default_factory=StreamSettings)

    @classmethod
    def from_env(cls, **overrides) -> "ServerSettings":
        """Defaults, then FACECAST_* environment variables, then `overrides`."""
        values: dict = {}
        if env("API_TOKEN") is not None:  # set, even to "" or spaces: clean_token refuses those
            values["token"] = env("API_TOKEN")
        if env("MAX_UPLOAD_MB"):
            values["max_upload_bytes"] = int(_number("MAX_UPLOAD_MB", env("MAX_UPLOAD_MB")) * MB)
        if env("SERVER_DIR"):
            values["data_dir"] = Path(env("SERVER_DIR")).expanduser()
        if env("SESSION_GRACE_S"):
            values["session_grace_s"] = _number("SESSION_GRACE_S", env("SESSION_GRACE_S"))
        if env("MAX_SESSIONS"):
            values["max_sessions"] = int(_number("MAX_SESSIONS", env("MAX_SESSIONS")))
        if env("BACKEND"):
            values["backend"] = env("BACKEND")
        if env("WORKERS"):
            values["workers"] = int(_number("WORKERS", env("WORKERS")))
        if env("ICE_SERVERS"):
            from facecast.transports.webrtc.ice import parse_ice_servers

            values["ice_servers"] = parse_ice_servers(env("ICE_SERVERS"))
        if env("MAX_PEERS"):
            values["max_peers"] = int(_number("MAX_PEERS", env("MAX_PEERS")))
        if env("MAX_QUEUED_S"):
            seconds = _number("MAX_QUEUED_S", env("MAX_QUEUED_S"))
            values["stream"] = dataclasses.replace(StreamSettings(), max_queued_s=seconds)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", clean_token(self.token))  # stripped and checked once, here

    def validate(self) -> None:
        """Raise InvalidArgument naming the first setting out of range."""
        if not 0 < self.port < 65536:
            raise InvalidArgument(f"port={self.port!r} must be in 1..65535")
        if self.max_upload_bytes <= 0:
            raise InvalidArgument(f"max_upload_bytes={self.max_upload_bytes!r} must be positive")
        if self.max_sessions < 1:
            raise InvalidArgument(f"max_sessions={self.max_sessions!r} must be at least 1")
        if self.workers < 1 or self.quick_workers < 1:
            raise InvalidArgument(f"workers={self.workers!r} and quick_workers={self.quick_workers!r} must be at "
                                  "least 1")
        if self.max_peers < 1:
            raise InvalidArgument(f"FACECAST_MAX_PEERS={self.max_peers!r} must be at least 1")
        if not self.stream.max_queued_s > 0:
            raise InvalidArgument(f"FACECAST_MAX_QUEUED_S={self.stream.max_queued_s!r} must be positive (seconds)")

    def replace(self, **changes) -> "ServerSettings":
        return dataclasses.replace(self, **changes)


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidArgument(f"FACECAST_{name}={text!r} is not a number") from None
