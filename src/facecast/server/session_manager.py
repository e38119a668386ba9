"""The server's speech sessions: creation within limits (each with its fMP4 and WebRTC outputs),
lookup by id, and reaping. The sessions themselves have the one session shape (streaming.lifecycle).

A session with no reader for `session_grace_s` is stopped and forgotten, so a client that goes
away stops its generation; a finished one is forgotten the same way once nobody reads it.
"""

from __future__ import annotations

import secrets
import threading
import time

from facecast.avatar.model import Avatar
from facecast.audio.tts import Speech
from facecast.errors import NotFound
from facecast.lipsync.base import LipsyncBackend, get_backend
from facecast.errors import StreamGone, Unavailable
from facecast.server.settings import ServerSettings
from facecast.streaming.session import Session
from facecast.streaming.telemetry import Telemetry
from facecast.transports.fmp4.output import Fmp4Output, attach_fmp4, output_rate
from facecast.transports.webrtc.ice import rtc_ice_servers
from facecast.transports.webrtc.output import WebRtcOutput, attach_webrtc


class SessionManager:
    """Sessions by id (secrets.token_urlsafe). Thread-safe.

    `home`: a replica's name when several processes serve one API (Ray Serve): every id is then
    `<home>.<token>`, so a router sends each request of a session to the process that holds it
    (facecast.server.ray.affinity), and an id of another home that arrives here is a session whose
    process is gone (410).
    """

    def __init__(self, settings: ServerSettings, telemetry: Telemetry, home: str = ""):
        self.settings, self.telemetry = settings, telemetry
        self.home = home
        self.draining = False  # set when this process is being stopped: no new sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._backend_lock = threading.Lock()  # apart from _lock: create() asks for a backend under _lock
        self._shared_backend: LipsyncBackend | None = None
        self.ended = 0  # sessions removed or reaped so far

    def backend(self) -> LipsyncBackend:
        """A backend for one session: the CPU default is cheap and keeps per-instance caches, so
        each session gets its own; other backends (model weights) are shared."""
        if self.settings.backend == "classic":
            return get_backend("classic")
        with self._backend_lock:
            if self._shared_backend is None:
                self._shared_backend = get_backend(self.settings.backend)
            return self._shared_backend

    def create(self, avatar: Avatar, avatar_id: str, *, live: bool, sample_rate: int,
               first: Speech | None, created_at: float) -> Session:
        """Start a session; Unavailable (503) when max_sessions are generating."""
        if self.draining:
            raise Unavailable("this server is shutting down and takes no new sessions; try again")
        with self._lock:
            active = sum(1 for s in self._sessions.values() if s.alive)
            if active >= self.settings.max_sessions:
                raise Unavailable(f"{active} sessions are generating, the limit is {self.settings.max_sessions} "
                                  "(FACECAST_MAX_SESSIONS); close one (DELETE /sessions/{id}) or try again later")
            sid = f"{self.home}.{secrets.token_urlsafe(12)}" if self.home else secrets.token_urlsafe(12)
            session = Session(sid, avatar, avatar_id, self.backend(), live=live, sample_rate=output_rate(sample_rate),
                              settings=self.settings.stream, telemetry=self.telemetry, created_at=created_at)
            attach_fmp4(session)
            attach_webrtc(session, rtc_ice_servers(self.settings.ice_servers))
            self._sessions[sid] = session
        session.start(first)
        self.telemetry.count("sessions_created")
        return session

    def get(self, sid: str) -> Session:
        with self._lock:
            session = self._sessions.get(sid) if isinstance(sid, str) else None
        if session is None and self.home and isinstance(sid, str) and "." in sid and not sid.startswith(self.home + "."):
            raise StreamGone(f"session {sid!r:.60} belongs to a server process that is gone (it stopped or "
                             "failed); start a new session")
        if session is None:
            raise NotFound(f"session {sid!r:.60} does not exist (it may have ended: sessions without a "
                           f"reader end after {self.settings.session_grace_s:g} s)")
        return session

    def remove(self, sid: str) -> Session:
        """Forget a session and stop its generation (returns it; join it off the event loop)."""
        session = self.get(sid)
        with self._lock:
            if self._sessions.pop(sid, None) is not None:
                self.ended += 1
        session.stop()
        return session

    def reap(self) -> list[Session]:
        """Stop and forget sessions nobody has read for the grace period; returns them."""
        now, grace = time.monotonic(), self.settings.session_grace_s
        with self._lock:
            gone = [sid for sid, s in self._sessions.items()
                    if s.output.readers == 0 and now - s.output.idle_since > grace]
            sessions = [self._sessions.pop(sid) for sid in gone]
            self.ended += len(sessions)
        for session in sessions:
            if session.alive:
                self.telemetry.count("sessions_reaped")
            session.stop()
        return sessions

    def stop_all(self) -> list[Session]:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.stop()
        return sessions

    def fmp4(self, sid: str) -> tuple[Session, Fmp4Output]:
        """A session and its fMP4 output (NotFound when there is no such session)."""
        session = self.get(sid)
        return session, session.output.sink("fmp4")

    def webrtc(self, sid: str) -> tuple[Session, WebRtcOutput]:
        """A session and its WebRTC output (NotFound when there is no such session)."""
        session = self.get(sid)
        return session, session.output.sink("webrtc")

    def active(self) -> int:
        """Sessions generating now."""
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.alive)

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())
