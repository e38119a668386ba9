"""One WebRTC viewer of a session: an aiortc RTCPeerConnection, its two tracks and their playout.

The browser (or a WHEP player) offers to receive video (and audio); the answer sends the
session's packets. Codec preferences (H.264, then VP8) are set on our transceivers before the
remote description, else aiortc ignores them. ICE servers: none unless configured
(transports.webrtc.ice), as aiortc's default asks a public STUN server.

Event-loop only, except `deliver`, which the session's worker thread calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.exceptions import OperationError
from aiortc.sdp import SessionDescription

from facecast.errors import InvalidArgument
from facecast.streaming.telemetry import Telemetry
from facecast.transports.webrtc.encoder import OPUS_RATE, EncodedAudio, EncodedFrame
from facecast.transports.webrtc.playout import Playout
from facecast.transports.webrtc.tracks import AudioPacketTrack, PacketQueue, VideoPacketTrack

log = logging.getLogger(__name__)

PREFERRED = ("video/H264", "video/VP8")  # in order; the first the offer has is used
CODEC_NAMES = {"video/h264": "h264", "video/vp8": "vp8"}
END_AUDIO_S = 0.5  # s the audio of a clip's last frames may still take after its last frame went
# s a clip's connection stays open after its last packets went: they are still in the network and
# the viewer's jitter buffer (hanging up at once cut the last 0.3 s of a clip on a loaded machine)
END_LINGER_S = 1.0


@dataclass(frozen=True)
class Delivery:
    """What one rendered batch becomes for the peers: encoded video per codec, Opus packets,
    and what the batch's first frame closes (arrivals of live chunks, an interrupt); `end`: the
    stream is complete."""

    video: dict[str, list[EncodedFrame]] = field(default_factory=dict)
    audio: list[EncodedAudio] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    end: bool = False


@dataclass(frozen=True)
class PeerSettings:
    """delay: s from a keyframe's arrival to its sending; resync_s / max_ahead_s: see Playout;
    max_video_frames: frames a peer may hold before its backlog is dropped up to a keyframe."""

    delay: float = 0.03
    resync_s: float = 0.3
    max_ahead_s: float | None = 0.25
    max_video_frames: int = 50


class Peer:
    """A viewer: negotiate with `answer(offer)`, then the session's deliveries flow to it.

    fps: the session's frame rate; request_keyframe(codec): asks the session's encoder for a
    keyframe (a lost picture); on_pulling(peer): the connection is up and wants media (the
    session then sends a keyframe, and a clip what it held back); on_closed(peer): it ended.
    """

    def __init__(self, pid: str, fps: int, settings: PeerSettings, telemetry: Telemetry, *,
                 ice_servers: list, request_keyframe: Callable[[str], None],
                 on_pulling: Callable[["Peer"], None], on_closed: Callable[["Peer"], None]):
        self.id, self.fps, self.settings, self.telemetry = pid, fps, settings, telemetry
        self.created_at = time.monotonic()
        self.codec: str | None = None
        self.loop = asyncio.get_running_loop()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers))
        self.playout = Playout(delay=settings.delay, resync_s=settings.resync_s, max_ahead_s=settings.max_ahead_s)
        self.video_queue: PacketQueue[EncodedFrame] = PacketQueue()
        self.audio_queue: PacketQueue[EncodedAudio] = PacketQueue()
        self.pulling = False  # aiortc asked for the first frame: the connection is up
        self.dropped = 0  # video frames dropped (a backlog, or while waiting for a keyframe)
        self.closed = False
        self._await_key = True
        self._audio_from = 0  # first 48 kHz sample to send (the first keyframe's time)
        self._request_keyframe, self._on_pulling, self._on_closed = request_keyframe, on_pulling, on_closed
        self._first_sent = False
        self.video = VideoPacketTrack(self.video_queue, self.playout, fps, on_first_pull=self._first_pull,
                                      on_sent=self._sent)
        self.audio = AudioPacketTrack(self.audio_queue, self.playout)
        self.pc.on("connectionstatechange", self._state_changed)

    # -- negotiation (event loop) ---------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to `offer_sdp`; InvalidArgument naming what is wrong with the offer."""
        kinds = _offered_kinds(offer_sdp)
        if "video" not in kinds:
            raise InvalidArgument("the SDP offer has no video m-line: offer to receive video (and audio), e.g. "
                                  "pc.addTransceiver('video', {direction: 'recvonly'})")
        video = self.pc.addTransceiver(self.video, direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for name in PREFERRED for c in capabilities if c.mimeType == name])
        self.video.sender = video.sender
        if "audio" in kinds:
            self.audio.sender = self.pc.addTransceiver(self.audio, direction="sendonly").sender
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except OperationError as exc:  # aiortc: no codec of ours in a media section
            raise InvalidArgument(f"the SDP offer cannot be answered ({exc}): it has no codec in common with "
                                  "facecast, which sends H.264 (packetization-mode=1) or VP8 video and Opus "
                                  "audio") from None
        except (ValueError, KeyError, IndexError) as exc:
            raise InvalidArgument(f"the SDP offer cannot be answered: {exc}") from None
        self.codec = _answered_codec(self.pc.localDescription.sdp)
        if self.codec is None:
            raise InvalidArgument("the SDP offer has no video codec in common: facecast sends H.264 "
                                  "(packetization-mode=1) or VP8")
        self._hook_picture_loss(video.sender)
        return self.pc.localDescription.sdp

    def _hook_picture_loss(self, sender: RTCRtpSender) -> None:
        """aiortc answers a PLI/FIR from the browser by asking its own encoder for a keyframe
        (RTCRtpSender._send_keyframe); the packets here come from the session's encoder, so ask it."""
        own = sender._send_keyframe

        def on_picture_loss() -> None:
            own()
            self._request_keyframe(self.codec)
            self.telemetry.count("webrtc_keyframe_requests")

        sender._send_keyframe = on_picture_loss

    # -- the session's deliveries ---------------------------------------------------------------
    def deliver(self, delivery: Delivery) -> None:
        """Hand a delivery over from any thread (the session's worker)."""
        if not self.closed:
            self.loop.call_soon_threadsafe(self._receive, delivery)

    def _receive(self, delivery: Delivery) -> None:
        if self.closed:
            return
        if delivery.end:
            self.video_queue.finish()
            self.audio_queue.finish()
            asyncio.ensure_future(self._hang_up_when_sent())
            return
        frames = delivery.video.get(self.codec, ())
        for frame in frames:
            self._take_frame(frame, delivery.meta if frame is frames[0] else None)
        if self.playout.started:
            for audio in delivery.audio:
                if audio.sample >= self._audio_from:
                    self.audio_queue.put(audio)
            if frames:
                self.playout.arrived(frames[-1].index / self.fps)

    def _take_frame(self, frame: EncodedFrame, meta: dict | None) -> None:
        if self._await_key:
            if not (frame.keyframe and self.pulling):
                self.dropped += 1
                return
            self._await_key = False
            if not self.playout.started:
                self.playout.start(frame.index / self.fps)
                self._audio_from = int(round(frame.index * OPUS_RATE / self.fps))
        if len(self.video_queue) >= self.settings.max_video_frames:  # the peer fell behind: skip to a keyframe
            self.dropped += self.video_queue.clear() + 1
            self.telemetry.count("webrtc_backlogs_dropped")
            self._await_key = True
            self._request_keyframe(self.codec)
            return
        self.video_queue.put(_Sendable(frame, meta) if meta else frame)

    def _first_pull(self) -> None:
        self.pulling = True
        self._on_pulling(self)

    def _sent(self, frame) -> None:
        now = time.monotonic()
        if not self._first_sent:
            self._first_sent = True
            self.telemetry.observe("webrtc_first_frame_sent_ms", (now - self.created_at) * 1000)
        meta = getattr(frame, "meta", None)
        if meta:
            for arrived in meta.get("arrivals", ()):
                self.telemetry.observe("webrtc_chunk_to_frame_ms", (now - arrived) * 1000)
            if meta.get("interrupt_at") is not None:
                self.telemetry.observe("webrtc_interrupt_to_closed_ms", (now - meta["interrupt_at"]) * 1000)

    # -- lifecycle ------------------------------------------------------------------------------
    async def _hang_up_when_sent(self) -> None:
        """A clip was shown to its end: close the connection END_LINGER_S after the last frame (and
        the audio with it, within END_AUDIO_S) has gone, so the viewer sees all of it, then the end."""
        await self.video_queue.drained.wait()
        try:
            await asyncio.wait_for(self.audio_queue.drained.wait(), END_AUDIO_S)
        except asyncio.TimeoutError:  # no audio track, or it is not pulled
            pass
        if not self.closed:
            await asyncio.sleep(END_LINGER_S)
        await self.close()

    async def _state_changed(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.video_queue.finish()
        self.audio_queue.finish()
        self._on_closed(self)
        await self.pc.close()

    def info(self) -> dict:
        return {"id": self.id, "codec": self.codec, "state": self.pc.connectionState,
                "frames_sent": self.video.sent, "audio_packets_sent": self.audio.sent,
                "frames_dropped": self.dropped, "resyncs": self.playout.resyncs,
                "backlog_s": round(self.playout.ahead_s(), 3)}


@dataclass(frozen=True)
class _Sendable:
    """An EncodedFrame with the batch telemetry its sending closes."""

    frame: EncodedFrame
    meta: dict

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def packet(self):
        return self.frame.packet


def _offered_kinds(sdp: str) -> set[str]:
    """Media kinds in an SDP offer; InvalidArgument when it does not parse as SDP."""
    if not isinstance(sdp, str) or not sdp.strip().startswith("v="):
        raise InvalidArgument("the offer is not SDP (it must start with 'v=0')")
    try:
        description = SessionDescription.parse(sdp)
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidArgument(f"the SDP offer does not parse: {exc}") from None
    return {m.kind for m in description.media}


def _answered_codec(sdp: str) -> str | None:
    """The video codec our answer sends ("h264" / "vp8"), or None when no video codec is left."""
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "video":
            for codec in media.rtp.codecs:
                name = CODEC_NAMES.get(codec.mimeType.lower())
                if name is not None:
                    return name
    return None
