"""What a running server holds: settings, telemetry, avatars, sessions and the worker threads.

Loaded once at start (the default avatar is prepared and every stage warmed up) and shared by the
routes through `request.app.state.runtime`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from facecast.server.avatar_store import AvatarStore
from facecast.server.session_manager import SessionManager
from facecast.server.settings import ServerSettings
from facecast.streaming.telemetry import PORTRAIT_WINDOW, Telemetry

log = logging.getLogger(__name__)

REAP_EVERY_S = 0.5  # s between sweeps for sessions without readers
DRAIN_CHECK_S = 0.25  # s between checks for the last session while draining
WARMUP_TEXT = "Hello, warming up."


class Runtime:
    """The server's long-lived state; `await start()` before serving, `await close()` after."""

    def __init__(self, settings: ServerSettings, home: str = ""):
        self.settings = settings
        self.telemetry = Telemetry()  # speech sessions, renders, uploads
        self.live_telemetry = Telemetry(PORTRAIT_WINDOW)  # live-portrait sessions (/ws/live)
        # Long jobs (whole-file renders, avatar preparation) and short latency-critical ones (a
        # session's speech synthesis or decoding, joins) get separate threads: long ones never
        # keep a session from starting.
        self.executor = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="facecast-work")
        self.quick = ThreadPoolExecutor(max_workers=settings.quick_workers, thread_name_prefix="facecast-quick")
        self.sessions = SessionManager(settings, self.telemetry, home)  # home: a replica's name (Ray Serve)
        self.cluster = None  # on Ray Serve: the other replicas' /stats (facecast.server.ray.stats.StatsBoard)
        self.avatars: AvatarStore | None = None
        self.started = time.monotonic()
        self.ready = False
        self.drain_s = 0.0  # s close() waits for sessions to end first (a Ray Serve replica being scaled down)
        self.generate_slots = asyncio.Semaphore(settings.generate_concurrency)
        self._reaper: asyncio.Task | None = None

    async def run(self, fn, *args, **kwargs):
        """Run blocking `fn` on a worker thread, never on the event loop (long jobs go here)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def run_quick(self, fn, *args, **kwargs):
        """Run short blocking `fn` (well under a second: a session's speech, a join) on the quick
        pool, which long jobs never occupy."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.quick, functools.partial(fn, *args, **kwargs))

    async def start(self) -> None:
        """Load the default avatar and warm every stage up (off the event loop)."""
        self.avatars = await self.run(AvatarStore, self.settings.data_dir, self.telemetry)
        await self.run(self._load_default)
        if self.settings.warmup:
            await self.run(self._warm_up)
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())
        self.ready = True

    async def close(self) -> None:
        if self.drain_s > 0:
            await self._drain(self.drain_s)
        if self._reaper is not None:
            self._reaper.cancel()
        sessions = self.sessions.stop_all()
        await self.run_quick(_join_all, sessions, 5.0)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.quick.shutdown(wait=False, cancel_futures=True)

    async def _drain(self, timeout: float) -> None:
        """Take no new sessions, and wait until the running ones end or `timeout` s pass."""
        self.sessions.draining = True
        deadline = time.monotonic() + timeout
        while self.sessions.active() and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_CHECK_S)

    def _load_default(self) -> None:
        from facecast.demo import demo_portrait

        default_id = self.avatars.ensure_default(demo_portrait())
        self.avatars.load(default_id)

    def _warm_up(self) -> None:
        """Run speech synthesis, audio features, one render and one encode once (first calls are slow)."""
        from facecast.engine import features_for, render_batch, speech_from_text
        from facecast.transports.fmp4.encoder import StreamEncoder

        start = time.perf_counter()
        _, avatar = self.avatars.load(None)
        backend = self.sessions.backend()
        backend.prepare(avatar)
        speech = speech_from_text(WARMUP_TEXT)
        features_for(backend, speech, self.settings.stream.fps)
        backend.audio_features(speech.audio, self.settings.stream.fps)
        backend.stream_features(self.settings.stream.live_rate, self.settings.stream.fps).push(
            np.zeros(self.settings.stream.live_rate // 5, np.float32))
        frames = render_batch(backend, avatar, backend.silence_features(2), 0, self.settings.stream.fps, idle=False)
        encoder = StreamEncoder(avatar.size, self.settings.stream.fps, 22050, keyint=25, max_frames=5)
        encoder.encode(frames, speech.audio.samples[:1764])
        log.info("warm-up took %.0f ms", (time.perf_counter() - start) * 1000)

    async def _reap_forever(self) -> None:
        released_at = 0  # sessions ended when memory was last released
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            try:
                gone = self.sessions.reap()
                if gone:
                    await self.run_quick(_join_all, gone, 5.0)
                if self.sessions.ended != released_at:
                    released_at = self.sessions.ended
                    await self.run_quick(release_memory)
            except Exception:  # noqa: BLE001 - the sweep must go on
                log.exception("session reaper failed")


def _join_all(sessions, timeout: float) -> None:
    for session in sessions:
        session.join(timeout)


M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(count: int = 2) -> None:
    """Few glibc malloc arenas: many short-lived session threads otherwise each leave one behind,
    fragmented, and resident memory stays above its baseline after the sessions end. Call early."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, count)
    except (OSError, AttributeError):  # not glibc
        pass


def release_memory() -> None:
    """Hand freed heap back to the system (glibc keeps it otherwise), after sessions end."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
