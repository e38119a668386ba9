"""What a session produces, and how transports subscribe to it.

The worker writes one MediaBatch per rendered batch: raw frames and the PCM that goes with them,
with their positions on the stream's clocks (frame f is at f / fps s; sample n at n / sample_rate
s, audio being the master clock). Transports take it in one of two ways:
  - a MediaSink attached with SessionOutput.attach() runs on the worker thread (the fMP4 encoder:
    transports.fmp4.Fmp4Output), so encoding adds no hand-off to the latency;
  - SessionOutput.subscribe() gives an asyncio consumer (a WebRTC track that encodes itself, a
    pipecat or LiveKit adapter) a MediaSubscription: `await recv()` returns the next batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facecast.streaming.queues import MAX_KEPT, Channel

SUBSCRIPTION_BATCHES = 8  # batches waiting for a raw subscriber at most (older ones are dropped)
SPEECH_BATCHES = 250  # speech batches kept for a keep_speech subscriber at most (>= 10 s at 25 frames/s)
ROOM_POLL_S = 0.02  # s between looks at the sinks while a clip's worker waits for room


@dataclass(frozen=True, eq=False)
class MediaBatch:
    """One rendered batch of a session.

    frames: (B, H, W, 3) uint8 BGR, output frames first_frame .. first_frame+B-1 at `fps`;
    pcm: (n,) float32 mono in [-1, 1] at `sample_rate` Hz, output samples first_sample ..
    (a clip's audio may run a little ahead of its frames; a live stream's matches them);
    speech: any frame shows speech (else idle); arrivals: time.monotonic() s at which the live
    PCM chunks first shown here arrived; interrupt_at: time.monotonic() s of the interrupt this
    batch answers (its first frame has a closed mouth), or None; utterances_shown: utterances
    shown to their last frame up to and including this batch (a running count: a reader that
    lost batches still sees every end; interrupted utterances are not counted); utterance: the
    frames are taken from an utterance (speech and its pauses; a batch never mixes), else idle.
    """

    first_frame: int
    frames: np.ndarray
    fps: int
    first_sample: int
    pcm: np.ndarray
    sample_rate: int
    speech: bool = False
    arrivals: tuple[float, ...] = ()
    interrupt_at: float | None = None
    utterances_shown: int = 0
    utterance: bool = False

    @property
    def pts_s(self) -> float:
        """Time of the first frame on the stream's clock (s)."""
        return self.first_frame / self.fps

    @property
    def audio_pts_s(self) -> float:
        """Time of the first sample on the stream's clock (s)."""
        return self.first_sample / self.sample_rate


class MediaSink(Protocol):
    """Takes a session's batches on its worker thread; must not block for long."""

    def write(self, batch: MediaBatch) -> None: ...

    def has_room(self) -> bool:
        """A clip's worker may render on (its readers do not trail too far)."""

    def end(self) -> None:
        """The stream is complete (a clip shown to its end): flush what is held."""

    def close(self, error: str | None) -> None:
        """No more batches (after end(), a stop or a failure with `error`)."""

    @property
    def readers(self) -> int: ...

    def info(self) -> dict: ...


@dataclass
class MediaSubscription:
    """A raw subscriber: `await recv()` returns the next MediaBatch, None once the stream ended.

    A subscriber that reads too slowly loses the oldest batches (counted in `dropped`), never
    holds the session back; with keep_speech, only idle ones (a reader that must play every bit
    of speech: up to SPEECH_BATCHES speech batches wait). close() unsubscribes.
    """

    output: SessionOutput
    channel: Channel = field(default_factory=lambda: Channel(SUBSCRIPTION_BATCHES))
    error: str | None = None
    keep_speech: bool = False  # speech batches are not dropped for a slow reader (idle ones are)

    async def recv(self) -> MediaBatch | None:
        return await self.channel.get()

    @property
    def dropped(self) -> int:
        return self.channel.dropped

    def close(self) -> None:
        self.output._unsubscribe(self)
        self.channel.close()

    # -- the sink side (worker thread) ----------------------------------------------------------
    def write(self, batch: MediaBatch) -> None:
        speech = batch.utterance or batch.interrupt_at is not None
        self.channel.put(batch, droppable=not (self.keep_speech and speech))

    @property
    def waiting(self) -> int:
        """Batches made and not yet read."""
        return len(self.channel)

    def end(self) -> None:
        pass

    def finish(self, error: str | None) -> None:
        self.error = error
        self.channel.close()


class SessionOutput:
    """A session's output: the sinks attached by name and the raw subscribers. Thread-safe.

    readers: sinks' readers plus raw subscribers; idle_since: time.monotonic() when the last of
    them left (or creation) - a session nobody reads is reaped.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._sinks: dict[str, MediaSink] = {}
        self._subscriptions: list[MediaSubscription] = []
        self._closed = False
        self._error: str | None = None
        self._idle_since = time.monotonic()

    def attach(self, name: str, sink: MediaSink) -> MediaSink:
        """Attach `sink` under `name` (before the session starts); returns it."""
        with self._lock:
            self._sinks[name] = sink
        return sink

    def sink(self, name: str) -> MediaSink | None:
        with self._lock:
            return self._sinks.get(name)

    def subscribe(self, keep_speech: bool = False) -> MediaSubscription:
        """Raw frames and PCM from the next batch on, for an asyncio consumer (see
        MediaSubscription for keep_speech)."""
        channel = Channel(SUBSCRIPTION_BATCHES, max_kept=SPEECH_BATCHES if keep_speech else MAX_KEPT)
        subscription = MediaSubscription(self, channel, keep_speech=keep_speech)
        with self._lock:
            if self._closed:
                subscription.finish(self._error)
            else:
                self._subscriptions.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: MediaSubscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
                if not self._subscriptions:
                    self._idle_since = time.monotonic()

    # -- the worker side -------------------------------------------------------------------------
    def write(self, batch: MediaBatch) -> None:
        for target in self._targets():
            target.write(batch)

    def end(self) -> None:
        for target in self._targets():
            target.end()

    def close(self, error: str | None = None) -> None:
        with self._lock:
            self._closed, self._error = True, error
            sinks, subscriptions = list(self._sinks.values()), list(self._subscriptions)
        for sink in sinks:
            sink.close(error)
        for subscription in subscriptions:
            subscription.finish(error)

    def wait_for_room(self, stop: threading.Event) -> None:
        """Block a clip's worker while the sinks its viewers read from have no room (their readers
        trail too far); with no viewer yet, while any sink is full (holding for its first reader).
        Returns at once when there is room, or when `stop` is set."""
        while not stop.is_set():
            sinks = [s for s in self._targets() if hasattr(s, "has_room")]
            watched = [s for s in sinks if s.readers > 0]
            if all(s.has_room() for s in (watched or sinks)):
                return
            stop.wait(ROOM_POLL_S)

    def _targets(self) -> list:
        with self._lock:
            return [*self._sinks.values(), *self._subscriptions]

    # -- state -------------------------------------------------------------------------------------
    @property
    def readers(self) -> int:
        with self._lock:
            return sum(s.readers for s in self._sinks.values()) + len(self._subscriptions)

    @property
    def idle_since(self) -> float:
        with self._lock:
            times = [self._idle_since, *(getattr(s, "idle_since", 0.0) for s in self._sinks.values())]
        return max(times)

    def info(self) -> dict:
        """Sinks' state (e.g. the fMP4 mime and segment depths) and the raw subscribers."""
        with self._lock:
            sinks, subscribers = list(self._sinks.values()), len(self._subscriptions)
        out: dict = {}
        for sink in sinks:
            out.update(sink.info())
        out["readers"] = sum(s.readers for s in sinks) + subscribers
        return out
