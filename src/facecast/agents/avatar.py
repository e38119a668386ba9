"""One live avatar in this process, for voice-agent frameworks (pipecat, LiveKit Agents).

An adapter pushes the agent's speech (PCM at any rate) as it is synthesised, marks the end of an
utterance, interrupts, and reads what the avatar shows: MediaBatch items (frames with the PCM
that goes with them, on one clock) from `media()`. The avatar is a live session (streaming.session):
it runs in real time, idles between utterances, and never buffers more than max_queued_s of speech.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import numpy as np

from facecast.avatar.model import Avatar
from facecast.config import PrepareSettings
from facecast.errors import InvalidArgument
from facecast.streaming.output import MediaBatch, MediaSubscription
from facecast.streaming.queues import Channel
from facecast.streaming.session import Session, StreamSettings
from facecast.streaming.telemetry import Telemetry

ROOM_WAIT_S = 1.0  # s a refused push waits for the doorbell before it looks again


@dataclass(frozen=True)
class AvatarOptions:
    """What the avatar looks like and how it is rendered.

    avatar: an image or video file, or a prepared avatar's id (`facecast prepare` prints it); None
    for the built-in astronaut. backend / backend_options: the lip-sync backend and its options
    (e.g. "musetalk", {"model_dir": "models/"}). size: longest side of the output in px (a file
    is prepared at most this large; None: the default, 1024 px at most). fps: output frames per second. sample_rate: rate (Hz)
    of the audio the avatar gives back with its frames. max_queued_s: speech (s) it holds at most.
    end_after_silence_s: an utterance that gets no audio for this long ends by itself; None: only
    end_utterance() or interrupt() end it (for frameworks that mark every end, e.g. LiveKit).
    """

    avatar: str | Path | None = None
    backend: str = "classic"
    backend_options: dict = field(default_factory=dict)
    size: int | None = None
    fps: int = 25
    sample_rate: int = 24_000
    max_queued_s: float = 60.0
    end_after_silence_s: float | None = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 60:
            raise InvalidArgument(f"fps={self.fps!r}: give 1..60 frames per second")
        if not 8000 <= self.sample_rate <= 96000:
            raise InvalidArgument(f"sample_rate={self.sample_rate!r}: give 8000..96000 Hz")
        if self.max_queued_s <= 0:
            raise InvalidArgument(f"max_queued_s={self.max_queued_s!r} must be positive")
        if self.end_after_silence_s is not None and self.end_after_silence_s <= 0:
            raise InvalidArgument(f"end_after_silence_s={self.end_after_silence_s!r}: give seconds > 0, or None")


def load(options: AvatarOptions) -> tuple[Avatar, str]:
    """(the prepared avatar, its display name); blocking (preparation, the first time)."""
    from facecast.portrait.source import load_avatar

    settings = PrepareSettings() if options.size is None else PrepareSettings(max_long_side=options.size)
    avatar = load_avatar(options.avatar, settings)
    return avatar, str(options.avatar or "astronaut")


class LiveAvatar:
    """A live avatar session. `await start()`, then push/end/interrupt from the event loop and read
    `media()`; `await close()` at the end. Not thread-safe beyond what Session is."""

    def __init__(self, options: AvatarOptions = AvatarOptions(), *, telemetry: Telemetry | None = None,
                 keep_speech: bool = False):
        self.options = options
        self.keep_speech = keep_speech  # media(): a slow reader loses idle batches only, never speech
        self.telemetry = telemetry or Telemetry()
        self.session: Session | None = None
        self._subscription: MediaSubscription | None = None

    async def start(self) -> None:
        """Prepare (or load) the avatar and the backend off the event loop, and start the session."""
        from facecast.lipsync.base import get_backend

        loop = asyncio.get_running_loop()
        avatar, name = await loop.run_in_executor(None, load, self.options)
        backend = await loop.run_in_executor(None, lambda: get_backend(self.options.backend,
                                                                         **self.options.backend_options))
        silence_end = self.options.end_after_silence_s
        settings = StreamSettings(fps=self.options.fps, max_queued_s=self.options.max_queued_s,
                                  live_silence_end_s=math.inf if silence_end is None else silence_end)
        self.session = Session(f"agent-{id(self):x}", avatar, name, backend, live=True,
                               sample_rate=self.options.sample_rate, settings=settings, telemetry=self.telemetry,
                               created_at=time.monotonic())
        self._subscription = self.session.output.subscribe(keep_speech=self.keep_speech)
        self.session.start()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames, px."""
        return self._session().avatar.size

    # -- speech in --------------------------------------------------------------------------------
    async def push_audio(self, samples: np.ndarray, rate: int, *, drop_on_interrupt: bool = False) -> None:
        """Queue speech: (n,) float32 mono in [-1, 1] at `rate` Hz (resampled). Waits while the
        avatar holds max_queued_s of speech already (back-pressure; it is never dropped, unless
        drop_on_interrupt and an interrupt() comes while it waits: then it is speech of the past)."""
        session = self._session()
        samples = np.ascontiguousarray(samples, np.float32).reshape(-1)
        if not len(samples):
            return
        epoch = session.epoch
        while not session.push_pcm(samples, rate):
            if not session.alive:
                raise RuntimeError(f"the avatar session ended ({session.state}: {session.error})")
            bell: Channel = Channel(maxsize=1)
            session.notify_room(bell)
            try:
                await asyncio.wait_for(bell.get(), ROOM_WAIT_S)
            except asyncio.TimeoutError:
                pass
            if drop_on_interrupt and session.epoch != epoch:
                return

    def end_utterance(self) -> None:
        """The utterance is complete: its last frames are shown without waiting for more audio."""
        self._session().end_utterance()

    def interrupt(self) -> None:
        """Drop all queued speech now; the next frame shows a closed mouth."""
        self._session().interrupt()

    @property
    def queued_s(self) -> float:
        """Seconds of speech waiting to be shown."""
        return self._session().queued_s

    # -- media out --------------------------------------------------------------------------------
    @property
    def media_waiting(self) -> int:
        """Batches made and not yet read from media() (a reader behind the avatar's clock)."""
        return self._subscription.waiting if self._subscription is not None else 0

    async def media(self) -> AsyncIterator[MediaBatch]:
        """The avatar's batches in order, as they are made (real time); ends when it is closed."""
        subscription = self._subscription
        if subscription is None:
            raise RuntimeError("start() the avatar first")
        while True:
            batch = await subscription.recv()
            if batch is None:
                return
            yield batch

    async def close(self) -> None:
        """Stop the session and wait for its worker (off the event loop)."""
        if self.session is None:
            return
        self.session.stop()
        if self._subscription is not None:
            self._subscription.close()
        await asyncio.get_running_loop().run_in_executor(None, self.session.join, 5.0)

    def _session(self) -> Session:
        if self.session is None:
            raise RuntimeError("start() the avatar first")
        return self.session
