"""A peer's two tracks: they hand aiortc the session's already-encoded packets at their playout time.

aiortc's sender calls `await track.recv()` in a loop and packetises what it gets; given an
`av.Packet` (not a frame) it does not encode. Each track takes its peer's packets in stream order
from a PacketQueue and returns each one when the peer's Playout says it is due.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Callable, Generic, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from facecast.transports.webrtc.encoder import OPUS_RATE, EncodedAudio, EncodedFrame
from facecast.transports.webrtc.playout import Playout

T = TypeVar("T")


class PacketQueue(Generic[T]):
    """Packets waiting for one track, in order. Event-loop only. finish() ends it once drained."""

    def __init__(self):
        self._items: collections.deque = collections.deque()
        self._ready = asyncio.Event()
        self.finished = False
        self.drained = asyncio.Event()  # set once finished and everything was taken

    def put(self, item: T) -> None:
        self._items.append(item)
        self._ready.set()

    def clear(self) -> int:
        """Drop everything waiting; returns how many."""
        count = len(self._items)
        self._items.clear()
        return count

    def finish(self) -> None:
        self.finished = True
        self._ready.set()

    async def get(self) -> T:
        """The next item; MediaStreamError once finished and drained."""
        while not self._items:
            if self.finished:
                self.drained.set()
                raise MediaStreamError("the session's stream ended")
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class VideoPacketTrack(MediaStreamTrack):
    """Video: EncodedFrames -> av.Packets (pts = frame number, time_base 1/fps) at their time.

    on_first_pull is called once, when aiortc first asks for a frame (the peer is connected);
    on_sent(item) after each frame is handed over (latency telemetry).
    """

    kind = "video"

    def __init__(self, queue: PacketQueue, playout: Playout, fps: int, *,
                 on_first_pull: Callable[[], None], on_sent: Callable[[EncodedFrame], None]):
        super().__init__()
        self.queue, self.playout, self.fps = queue, playout, fps
        self._on_first_pull, self._on_sent = on_first_pull, on_sent
        self._pulled = False
        self.sent = 0

    async def recv(self) -> av.Packet:
        if not self._pulled:
            self._pulled = True
            self._on_first_pull()
        frame: EncodedFrame = await self.queue.get()
        await _until(self.playout, frame.index / self.fps)
        self.sent += 1
        self._on_sent(frame)
        return frame.packet


class AudioPacketTrack(MediaStreamTrack):
    """Audio: 20 ms Opus packets (pts = first 48 kHz sample) at their time on the same Playout."""

    kind = "audio"

    def __init__(self, queue: PacketQueue, playout: Playout):
        super().__init__()
        self.queue, self.playout = queue, playout
        self.sent = 0

    async def recv(self) -> av.Packet:
        audio: EncodedAudio = await self.queue.get()
        await _until(self.playout, audio.sample / OPUS_RATE)
        self.sent += 1
        return audio.packet


async def _until(playout: Playout, t: float) -> None:
    """Sleep until stream time t is due on `playout` (at once when it is past)."""
    wait = playout.wait_s(t)
    if wait > 0:
        await asyncio.sleep(wait)
