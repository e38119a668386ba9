"""Response models of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, naming the field or value at fault.")


class HealthOut(BaseModel):
    status: str = Field(description='"ok" once models and the default avatar are loaded and warm.')
    version: str
    backend: str = Field(description="Lip-sync backend in use.")
    default_avatar: str | None = Field(description="Id of the avatar used when a request names none.")
    active_sessions: int
    auth: bool = Field(description="Whether an API token is required.")


class AvatarOut(BaseModel):
    id: str = Field(description="Random public id; use it in avatar_id fields.")
    name: str = Field(description="The uploaded file's name, for display only.")
    kind: str = Field(description='"image" or "video".')
    width: int = Field(description="Output width in pixels.")
    height: int = Field(description="Output height in pixels.")
    frames: int = Field(description="Source frames (1 for an image).")
    created: float = Field(description="Unix time of the upload.")
    default: bool = Field(description="The avatar used when a request names none.")


class AvatarCreatedOut(AvatarOut):
    cached: bool = Field(description="The same content was already uploaded; its avatar was reused.")


class AvatarListOut(BaseModel):
    avatars: list[AvatarOut]


class DeletedOut(BaseModel):
    deleted: str = Field(description="Id of what was deleted.")


class SessionOut(BaseModel):
    id: str = Field(description="Random session id.")
    avatar_id: str
    live: bool = Field(description="Real-time session (takes live audio, idles between utterances) "
                                   "rather than a clip that ends.")
    state: str = Field(description="starting, streaming, finished, stopped or failed.")
    error: str | None = Field(description="Why generation failed, when it did.")
    fps: int
    sample_rate: int = Field(description="Audio rate of the stream in Hz.")
    frames: int = Field(description="Frames generated so far.")
    seconds: float = Field(description="Seconds of video generated so far.")
    mime: str | None = Field(description='MSE type of the stream, e.g. video/mp4; codecs="avc1.42C01E, '
                                         'mp4a.40.2" (known after the first frame).')
    queued_speech_s: float = Field(description="Seconds of speech waiting to be shown.")
    commands_queued: int = Field(description="Live audio chunks and controls not yet applied.")
    segments_kept: int = Field(description="Stream segments held for readers (since the last keyframe).")
    bytes_kept: int
    slowest_reader_lag: int = Field(description="Segments the slowest reader trails the newest one.")
    readers: int = Field(description="Clients watching now: fMP4 readers and WebRTC peers.")
    webrtc_peers: list[dict] = Field(description="WebRTC viewers: id, codec, connection state, frames sent and "
                                                 "dropped, playout re-anchors, backlog (s).")
    webrtc_peers_ended: list[dict] = Field(default_factory=list, description=(
        "The final state of the last 8 WebRTC viewers that hung up or were closed (a clip's viewer "
        "closes itself a second after its last frame): what each was sent in all."))
    stream_url: str = Field(description="GET: the fragmented MP4 stream.")
    webrtc_url: str = Field(description="POST an SDP offer here to watch over WebRTC (JSON or WHEP).")
    audio_ws_url: str = Field(description="WebSocket for live 16-bit PCM (live sessions).")


class SessionListOut(BaseModel):
    sessions: list[SessionOut]


class LatencyOut(BaseModel):
    count: int
    p50: float
    p95: float
    p99: float
    max: float


class StatsOut(BaseModel):
    uptime_s: float
    active_sessions: int = Field(description="Sessions generating now.")
    sessions: list[SessionOut] = Field(description="Every session with its queue depths.")
    latency_ms: dict[str, LatencyOut] = Field(
        description="Per-stage latency in ms: tts_ms, decode_ms, features_ms, render_ms_per_frame, "
                    "encode_ms_per_frame, first_segment_ms (request -> first segment made), "
                    "first_frame_sent_ms (request -> first segment sent), live_chunk_to_frame_ms "
                    "(live PCM chunk arrives -> first frame showing it sent), interrupt_to_closed_ms "
                    "(interrupt -> first closed-mouth frame sent), avatar_prepare_ms.")
    frames_per_s: float = Field(description="Frames generated per second over the last 5 s, all sessions.")
    counters: dict[str, int] = Field(description="Event counts: frames, sessions_created, sessions_reaped, "
                                                 "session_errors, avatar cache hits and misses, ...")
    cache: dict[str, int] = Field(description="Avatar cache hits and misses.")
    memory: dict[str, float] = Field(description="Process memory in MiB: rss, peak rss.")
    queues: dict[str, int] = Field(description="Totals: queued commands, segments kept, readers.")
    live: dict = Field(description="Live portrait (/ws/live): active and finished sessions, loop latency "
                                   "(receive -> send) and per-stage latency (decode, landmarks, warp, encode) "
                                   "p50/p95/p99 in ms, delivered frames/s, and each running session's queue "
                                   "depths, drops and refusals.")
    cluster: dict | None = Field(None, description="Only on Ray Serve (`facecast serve --ray`): `replicas` (each "
                                                   "replica's id, active sessions, frames/s, counters, memory, age "
                                                   "of its report) and `totals` over all of them.")


class WebRtcOfferIn(BaseModel):
    sdp: str = Field(description="The browser's SDP offer (RTCSessionDescription.sdp), receiving video and audio.")
    type: str = Field("offer", description='"offer".')


class WebRtcAnswerOut(BaseModel):
    sdp: str = Field(description="The server's SDP answer, every ICE candidate included (no trickle).")
    type: str = Field(description='"answer".')
    peer_id: str = Field(description="This viewer's id.")
    location: str = Field(description="URL to DELETE to hang up (also the Location header).")


class IceServersOut(BaseModel):
    iceServers: list[dict] = Field(description="STUN/TURN servers for RTCPeerConnection (FACECAST_ICE_SERVERS); "
                                               "empty by default.")
