"""The fMP4 sink of a session: encodes its batches on the worker thread and keeps the segments
for HTTP readers (a SegmentFanout), recording the latencies a sent segment closes."""

from __future__ import annotations

import threading
import time

from facecast.streaming.output import MediaBatch
from facecast.streaming.telemetry import Telemetry
from facecast.transports.fmp4.encoder import AAC_RATES, Fmp4Segment, StreamEncoder, output_rate
from facecast.transports.fmp4.fanout import SegmentFanout

__all__ = ["AAC_RATES", "Fmp4Output", "attach_fmp4", "output_rate"]


class Fmp4Output:
    """MediaSink: MediaBatch -> H.264 + AAC fMP4 segments in `segments` (the readers' fan-out).

    size: (width, height) px; fps; sample_rate: an AAC rate (Hz); keyint: frames between keyframes;
    max_frames: frames per segment at most; max_lag: segments a reader may trail; from_start: the
    first reader gets the stream from t = 0 (a clip). created_at: time.monotonic() of the request
    (for first_segment_ms and first_frame_sent_ms in `telemetry`).
    """

    def __init__(self, size: tuple[int, int], fps: int, sample_rate: int, *, keyint: int, max_frames: int,
                 max_lag: int, from_start: bool, telemetry: Telemetry, created_at: float,
                 preset: str = "ultrafast", crf: int = 23):
        self.segments = SegmentFanout(max_lag=max_lag, from_start=from_start)
        self.telemetry, self.created_at = telemetry, created_at
        self._encoder_args = (size, fps, sample_rate, keyint, max_frames, preset, crf)
        self._encoder: StreamEncoder | None = None
        self._first_sent = False
        self._lock = threading.Lock()

    # -- the sink (worker thread) ----------------------------------------------------------------
    def write(self, batch: MediaBatch) -> None:
        start = time.perf_counter()
        segments = self._encode().encode(batch.frames, batch.pcm)
        self.telemetry.observe("encode_ms_per_frame", (time.perf_counter() - start) * 1000 / len(batch.frames))
        self._publish(segments, {"arrivals": batch.arrivals, "interrupt_at": batch.interrupt_at,
                                 "speech": batch.speech})

    def end(self) -> None:
        if self._encoder is not None:
            self._publish(self._encoder.finish(), {})

    def close(self, error: str | None) -> None:
        self.segments.close(error)

    def has_room(self) -> bool:
        return self.segments.has_room()

    def _encode(self) -> StreamEncoder:
        if self._encoder is None:  # made on the worker thread, when the first batch comes
            size, fps, rate, keyint, max_frames, preset, crf = self._encoder_args
            self._encoder = StreamEncoder(size, fps, rate, keyint=keyint, max_frames=max_frames,
                                          preset=preset, crf=crf)
        return self._encoder

    def _publish(self, segments: list[Fmp4Segment], meta: dict) -> None:
        if self._encoder.init is not None and not self.segments.mime_ready:
            self.segments.set_init(self._encoder.init)
            self.telemetry.observe("first_segment_ms", (time.monotonic() - self.created_at) * 1000)
        for i, segment in enumerate(segments):
            if i == len(segments) - 1:
                segment.meta.update(meta)
            self.segments.append(segment)

    # -- readers (event-loop thread) ---------------------------------------------------------------
    def segment_sent(self, segment: Fmp4Segment) -> None:
        """A reader sent `segment`: record the latencies it closes, once."""
        meta = segment.meta
        if meta.get("sent"):
            return
        meta["sent"] = True
        now = time.monotonic()
        with self._lock:
            first, self._first_sent = not self._first_sent, True
        if first:
            self.telemetry.observe("first_frame_sent_ms", (now - self.created_at) * 1000)
        for arrived in meta.get("arrivals", ()):
            self.telemetry.observe("live_chunk_to_frame_ms", (now - arrived) * 1000)
        if meta.get("interrupt_at") is not None:
            self.telemetry.observe("interrupt_to_closed_ms", (now - meta["interrupt_at"]) * 1000)

    @property
    def mime(self) -> str | None:
        return None if self._encoder is None else self._encoder.mime

    @property
    def readers(self) -> int:
        return self.segments.readers

    @property
    def idle_since(self) -> float:
        return self.segments.idle_since

    def info(self) -> dict:
        return {"mime": self.mime, **self.segments.depth()}


def attach_fmp4(session, telemetry: Telemetry | None = None) -> Fmp4Output:
    """Attach an fMP4 sink to `session` (a streaming.session.Session, before it starts) under the
    name "fmp4", with the session's settings; returns it."""
    s = session.settings
    sink = Fmp4Output(session.avatar.size, s.fps, session.sample_rate, keyint=s.keyint,
                      max_frames=s.max_segment_frames, max_lag=s.max_lag(session.live),
                      from_start=not session.live, telemetry=telemetry or session.telemetry,
                      created_at=session.created_at, preset=s.preset, crf=s.crf)
    session.output.attach("fmp4", sink)
    return sink
