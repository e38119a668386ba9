"""The WebRTC sink of a session: its batches are encoded once (per video codec its peers use, and
once for Opus) on the worker thread, and every peer sends the same packets at its own playout time.

A clip keeps its first batches (up to `hold_bytes` of raw frames) until its first peer is
connected, so a viewer who offers after creating the clip still sees it from the start, and
holds its producer back while its slowest peer has more than `clip_ahead_s` buffered. A live
session is paced by its own clock; a joining peer starts at the next keyframe.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import threading
import time

from facecast.errors import NotFound
from facecast.streaming.output import MediaBatch
from facecast.streaming.telemetry import Telemetry
from facecast.transports.webrtc.encoder import AudioEncoder, VideoEncoder
from facecast.transports.webrtc.peer import Delivery, Peer, PeerSettings

MB = 1024 * 1024
ENDED_PEERS_KEPT = 8  # the final state of this many peers that hung up stays in info()


class WebRtcOutput:
    """MediaSink for a session's WebRTC peers. write/end/close/has_room: the worker thread;
    connect/disconnect: the event loop.

    size: (width, height); fps; sample_rate: the session's audio rate (Hz); live: a live session;
    keyint: frames between keyframes; ice_servers: aiortc RTCIceServer list for new peers.
    """

    def __init__(self, size: tuple[int, int], fps: int, sample_rate: int, *, live: bool, keyint: int,
                 telemetry: Telemetry, ice_servers: list | None = None, hold_bytes: int = 32 * MB,
                 clip_ahead_s: float = 1.5):
        self.size, self.fps, self.sample_rate, self.live, self.keyint = size, fps, sample_rate, live, keyint
        self.telemetry, self.ice_servers = telemetry, list(ice_servers or [])
        self.hold_bytes, self.clip_ahead_s = hold_bytes, clip_ahead_s
        self.peer_settings = PeerSettings() if live else PeerSettings(delay=0.1, max_ahead_s=None,
                                                                        max_video_frames=int(fps * (clip_ahead_s + 2)))
        self._lock = threading.Lock()  # _peers, _held
        self._encoding = threading.Lock()  # the encoders, and the order deliveries leave in
        self._peers: dict[str, Peer] = {}
        self._ended_peers: collections.deque[dict] = collections.deque(maxlen=ENDED_PEERS_KEPT)
        self._video: dict[str, VideoEncoder] = {}
        self._audio: AudioEncoder | None = None
        self._held: collections.deque[MediaBatch] = collections.deque()
        self._held_bytes = 0
        self._holding = not live  # until a clip's first peer is connected
        self._ended = False  # a clip was shown to its end
        self._closed = False
        self._idle_since = time.monotonic()
        self.encode_ms = 0.0  # total time spent encoding (ms), for the per-peer cost benchmark

    # -- peers (event loop) -----------------------------------------------------------------------
    async def connect(self, offer_sdp: str) -> Peer:
        """A new peer answering `offer_sdp` (read its answer from peer.pc.localDescription)."""
        peer = Peer(secrets.token_urlsafe(9), self.fps, self.peer_settings, self.telemetry,
                    ice_servers=self.ice_servers, request_keyframe=self.request_keyframe,
                    on_pulling=self._pulling, on_closed=self._forget)
        with self._lock:
            self._peers[peer.id] = peer
        try:
            await peer.answer(offer_sdp)
        except BaseException:
            await peer.close()
            raise
        if self._closed:
            await peer.close()
        self.telemetry.count("webrtc_peers")
        return peer

    def peer(self, pid: str) -> Peer:
        with self._lock:
            peer = self._peers.get(pid)
        if peer is None:
            raise NotFound(f"WebRTC peer {pid!r:.40} is not connected to this session")
        return peer

    def request_keyframe(self, codec: str) -> None:
        encoder = self._video.get(codec)
        if encoder is not None:
            encoder.request_keyframe()

    def _pulling(self, peer: Peer) -> None:
        """A peer is connected and wants media: a keyframe for it, and a clip's held batches."""
        self.request_keyframe(peer.codec)
        if self._held or self._ended:
            asyncio.get_running_loop().run_in_executor(None, self._release_held)

    def _forget(self, peer: Peer) -> None:
        final = {**peer.info(), "state": "closed"}
        with self._lock:
            if self._peers.pop(peer.id, None) is not None:
                self._ended_peers.append(final)
                if not self._peers:
                    self._idle_since = time.monotonic()

    # -- the sink (worker thread) -----------------------------------------------------------------
    def write(self, batch: MediaBatch) -> None:
        with self._encoding:
            peers = self._pulling_peers()
            if not peers:
                if self._holding:
                    self._hold(batch)
                return
            self._deliver(batch, peers)

    def end(self) -> None:
        with self._encoding:
            self._ended = True
            if not self._held:
                for peer in self._pulling_peers():
                    peer.deliver(Delivery(end=True))

    def close(self, error: str | None) -> None:
        """The session stopped: peers finish what they hold after a clip's end, else close now."""
        self._closed = True
        with self._lock:
            peers = list(self._peers.values())
        for peer in peers:
            if self._ended and error is None:
                peer.deliver(Delivery(end=True))
            else:
                peer.loop.call_soon_threadsafe(asyncio.ensure_future, peer.close())

    def has_room(self) -> bool:
        """A clip may render on: its slowest connected peer holds less than clip_ahead_s, or it
        still has room to hold batches for the first peer."""
        peers = self._pulling_peers()
        if peers:
            return min(p.playout.ahead_s() for p in peers) < self.clip_ahead_s
        return not self._holding or self._held_bytes < self.hold_bytes

    def _pulling_peers(self) -> list[Peer]:
        with self._lock:
            return [p for p in self._peers.values() if p.pulling and not p.closed]

    def _hold(self, batch: MediaBatch) -> None:
        self._held.append(batch)
        self._held_bytes += batch.frames.nbytes
        while self._held_bytes > self.hold_bytes and len(self._held) > 1:  # an fMP4 reader watches instead
            self._held_bytes -= self._held.popleft().frames.nbytes

    def _release_held(self) -> None:
        """Deliver a clip's held batches (and its end, if it came) to the first connected peers."""
        with self._encoding:
            peers = self._pulling_peers()
            if not peers:
                return
            self._holding = False
            while self._held:
                self._deliver(self._held.popleft(), peers)
            self._held_bytes = 0
            if self._ended:
                for peer in peers:
                    peer.deliver(Delivery(end=True))

    def _deliver(self, batch: MediaBatch, peers: list[Peer]) -> None:
        """Encode `batch` once per codec the peers use (call with _encoding held) and hand it over."""
        start = time.perf_counter()
        video = {}
        for codec in sorted({p.codec for p in peers}):
            encoder = self._video.get(codec)
            if encoder is None:
                encoder = self._video[codec] = VideoEncoder(codec, self.size, self.fps, keyint=self.keyint)
            video[codec] = encoder.encode(batch.frames, batch.first_frame)
        if self._audio is None:
            self._audio = AudioEncoder(self.sample_rate)
        audio = self._audio.encode(batch.pcm, batch.first_sample)
        elapsed = (time.perf_counter() - start) * 1000
        self.encode_ms += elapsed
        self.telemetry.observe("webrtc_encode_ms_per_frame", elapsed / max(1, len(batch.frames)))
        delivery = Delivery(video, audio, {"arrivals": batch.arrivals, "interrupt_at": batch.interrupt_at})
        for peer in peers:
            peer.deliver(delivery)

    # -- state ----------------------------------------------------------------------------------
    @property
    def readers(self) -> int:
        with self._lock:
            return len(self._peers)

    @property
    def idle_since(self) -> float:
        return self._idle_since

    def info(self) -> dict:
        with self._lock:
            peers = [p.info() for p in self._peers.values()]
            ended = list(self._ended_peers)
        return {"webrtc_peers": peers, "webrtc_peers_ended": ended}


def attach_webrtc(session, ice_servers: list | None = None, telemetry: Telemetry | None = None) -> WebRtcOutput:
    """Attach a WebRTC sink to `session` (a streaming.session.Session, before it starts) under the
    name "webrtc"; returns it. Nothing is encoded until a peer connects."""
    s = session.settings
    sink = WebRtcOutput(session.avatar.size, s.fps, session.sample_rate, live=session.live, keyint=2 * s.keyint,
                        telemetry=telemetry or session.telemetry, ice_servers=ice_servers)
    session.output.attach("webrtc", sink)
    return sink
