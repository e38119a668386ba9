"""A peer's two tracks: they hand aiortc the session's already-encoded packets at their playout time.

aiortc's sender calls `await track.recv()` in a loop and packetises what it gets; given an
`av.Packet` (not a frame) it does not encode. Each track takes its peer's packets in stream order
from a PacketQueue and returns each one when the peer's Playout says it is due.

Lip sync in the browser rests on the RTCP sender reports, which map each track's RTP clock to
wall-clock (NTP) time. aiortc takes that time from the moment a packet left; a packet sent late
(the machine was busy) would then skew one track's mapping against the other's. So after each
packet a track writes the time the packet was *due* (its playout time) into the sender's report
fields instead: both tracks then map to the one playout clock, however late a packet went.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Callable, Generic, TypeVar

import av
from aiortc import clock
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from facecast.transports.webrtc.encoder import OPUS_RATE, EncodedAudio, EncodedFrame
from facecast.transports.webrtc.playout import Playout

T = TypeVar("T")
# aiortc's RTCRtpSender keeps the (NTP, RTP) pair of its last sent packet in these private fields
# and reports them in every sender report (tests/test_webrtc_clock.py checks they still exist).
SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP = "_RTCRtpSender__rtp_timestamp"


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
        self.sender = None  # the RTCRtpSender sending this track (set by the peer)
        self._last_t: float | None = None  # stream time of the packet handed over last

    async def recv(self) -> av.Packet:
        restamp(self.sender, self.playout, self._last_t)
        if not self._pulled:
            self._pulled = True
            self._on_first_pull()
        frame: EncodedFrame = await self.queue.get()
        self._last_t = frame.index / self.fps
        await _until(self.playout, self._last_t)
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
        self.sender = None  # the RTCRtpSender sending this track (set by the peer)
        self._last_t: float | None = None

    async def recv(self) -> av.Packet:
        restamp(self.sender, self.playout, self._last_t)
        audio: EncodedAudio = await self.queue.get()
        self._last_t = audio.sample / OPUS_RATE
        await _until(self.playout, self._last_t)
        self.sent += 1
        return audio.packet


async def _until(playout: Playout, t: float) -> None:
    """Sleep until stream time t is due on `playout` (at once when it is past)."""
    wait = playout.wait_s(t)
    if wait > 0:
        await asyncio.sleep(wait)


def restamp(sender, playout: Playout, t: float | None) -> None:
    """Report the packet just sent (stream time t) at its playout time, not at the time it left.

    Called as the sender asks for the next packet, i.e. right after it sent the last one and set
    its report fields, with no await in between, so its next sender report carries these values.
    """
    if sender is None or t is None or not playout.started or not getattr(sender, SENDER_RTP, 0):
        return
    late_s = playout.now() - playout.wall(t)  # how much later than due the packet left (s)
    setattr(sender, SENDER_NTP, clock.current_ntp_time() - int(late_s * (1 << 32)))
