"""A streaming session: speech in, fragmented MP4 out, generated in small batches on a worker thread.

Two kinds:
  clip  - one utterance (a file or text) rendered as fast as readers take it, then the stream ends;
  live  - runs in real time until stopped: utterances (live PCM pushed by a voice agent, or text /
          files) are shown as they come, and between them the avatar idles (closed mouth, blinks)
          over silent audio, so the stream never stalls.
Audio is the master clock: output frame f carries output samples [f*sr/fps, (f+1)*sr/fps).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from facecast.audio.pcm import Audio
from facecast.audio.resampling import resample
from facecast.avatar.model import Avatar
from facecast.engine import Speech, features_for
from facecast.idle import idle_motion
from facecast.lipsync.base import LipsyncBackend
from facecast.streaming.encoder import StreamEncoder, output_rate
from facecast.streaming.log import StreamLog
from facecast.streaming.speech import SpeechQueue, Taken
from facecast.streaming.telemetry import Telemetry

log = logging.getLogger(__name__)

COMMAND_QUEUE = 4096  # commands (PCM chunks, controls) waiting for the producer at most
DRAIN_MAX = 256  # commands applied between two batches at most


@dataclass(frozen=True)
class StreamSettings:
    """How sessions generate and pace their streams."""

    fps: int = 25
    keyint_s: float = 1.0  # s between keyframes (join points for late readers)
    first_batch: int = 2  # frames of a clip's first batch: small, for a short time to first frame
    batch: int = 4  # frames per batch of a clip (160 ms at 25 fps)
    max_segment_frames: int = 5  # frames per segment at most (200 ms at 25 fps)
    max_lag_s: float = 6.0  # s of segments a clip may run ahead of its slowest reader
    audio_lead: int = 3072  # samples of a clip's audio encoded ahead of its frames (AAC delay)
    live_rate: int = 48_000  # Hz: audio rate of live streams (AAC adds 2048 samples of delay)
    live_lead_frames: int = 2  # idle frames made ahead of the wall clock
    live_speech_ahead: int = 2  # speech frames may run this much further ahead of the clock
    live_wait_frames: int = 3  # an open utterance may hold the stream back this long for audio
    live_batch: int = 3  # frames per live batch at most (catching up)
    live_resync_s: float = 1.0  # s behind the clock after which the live clock is re-anchored
    live_silence_end_s: float = 0.5  # s without audio after which an open utterance ends by itself
    max_queued_s: float = 60.0  # s of speech a live session queues at most (PCM pushers wait, say() is refused)
    preset: str = "ultrafast"
    crf: int = 23
    idle: bool = True
    seed: int = 0

    @property
    def keyint(self) -> int:
        return max(1, int(round(self.keyint_s * self.fps)))

    def max_lag(self, live: bool) -> int:
        """max_lag_s in segments: a clip's hold `batch` frames, a live stream's one or a few."""
        frames_per_segment = 1 if live else self.batch
        return max(4, int(math.ceil(self.max_lag_s * self.fps / frames_per_segment)))


class _Done:
    """Marker: a clip has shown all of its speech."""


DONE = _Done()


@dataclass
class Step:
    """What to render next: frames from `start`, their features and audio."""

    taken: Taken
    interrupt_at: float | None = None


class Session:
    """One stream of one avatar. Inputs are thread-safe; a worker thread renders and encodes.

    live: a real-time session (else a clip that ends); sample_rate: output audio rate (an AAC rate);
    created_at: time.monotonic() of the request that created it (for time-to-first-frame).
    """

    def __init__(self, sid: str, avatar: Avatar, avatar_id: str, backend: LipsyncBackend, *, live: bool,
                 sample_rate: int, settings: StreamSettings, telemetry: Telemetry, created_at: float):
        self.id, self.avatar, self.avatar_id, self.live = sid, avatar, avatar_id, live
        self.settings, self.telemetry, self.created_at = settings, telemetry, created_at
        self.sample_rate = output_rate(sample_rate)
        self.backend = backend
        self.log = StreamLog(max_lag=settings.max_lag(live), from_start=not live)
        columns = backend.silence_features(1).shape[1]
        self.speech = SpeechQueue(self.sample_rate, settings.fps, columns, backend.stream_features)
        self.produced = 0  # frames made
        self.state = "starting"
        self.error: str | None = None
        self.first_sent = False
        self.audio_connected = False  # a live-audio WebSocket feeds this session
        self._idle_rows = backend.silence_features(settings.live_batch)
        self._encoder: StreamEncoder | None = None
        self._commands: queue.Queue = queue.Queue(maxsize=COMMAND_QUEUE)
        self._stop = threading.Event()
        self._epoch_lock = threading.Lock()
        self._epoch = 0  # bumped by every interrupt; older PCM commands are dropped
        self._queued_in = 0.0  # s of speech (PCM, utterances) in commands not yet applied
        self._queued_out = 0.0  # s of speech queued in self.speech (written by the worker only)
        self._interrupt_at: float | None = None
        self._last_pcm = 0.0
        self._t0 = 0.0
        self._init_callbacks: list = []
        self._thread = threading.Thread(target=self._run, name=f"facecast-session-{sid[:6]}", daemon=True)

    # -- control (any thread) -------------------------------------------------------------
    def start(self, first: Speech | None = None) -> None:
        """Start generating; `first` is the clip to show (a live session may start without)."""
        if first is not None:
            self._commands.put_nowait(("say", 0, first, 0.0))
        self._thread.start()

    def stop(self) -> None:
        """Stop generating (idempotent); readers get what was made and the stream ends."""
        if not self._stop.is_set():
            self._stop.set()
            self._put(("wake", self._epoch))

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def on_init(self, callback) -> None:
        """Call `callback(error or None)` once the init segment exists or generation failed."""
        with self._epoch_lock:
            if self.log.mime_ready or self.state in ("failed", "finished", "stopped"):
                done = True
            else:
                self._init_callbacks.append(callback)
                done = False
        if done:
            callback(self.error)

    # -- input (any thread) ------------------------------------------------------------------
    def say(self, speech: Speech) -> bool:
        """Queue an utterance (text or file) after what is queued. False when it does not fit in
        max_queued_s seconds of waiting speech (or the command queue is full)."""
        seconds = speech.audio.duration
        if not self._reserve(seconds):
            return False
        if not self._put(("say", self._epoch, speech, seconds)):
            self._release(seconds)
            return False
        return True

    def push_pcm(self, samples: np.ndarray, rate: int) -> bool:
        """Queue live audio: samples (n,) float32 mono at `rate` Hz. False when too much waits."""
        seconds = len(samples) / rate
        if not self._reserve(seconds):
            return False
        if not self._put(("pcm", self._epoch, samples, rate, time.monotonic(), seconds)):
            self._release(seconds)
            return False
        return True

    @property
    def queued_s(self) -> float:
        """Seconds of speech waiting: in commands not yet applied plus queued and not yet shown."""
        return self._queued_in + self._queued_out

    def _reserve(self, seconds: float) -> bool:
        """Count `seconds` of speech as waiting, unless that would pass max_queued_s."""
        with self._epoch_lock:
            if self._queued_in + self._queued_out + seconds > self.settings.max_queued_s:
                return False
            self._queued_in += seconds
        return True

    def _release(self, seconds: float) -> None:
        with self._epoch_lock:
            self._queued_in = max(0.0, self._queued_in - seconds)

    def end_utterance(self) -> bool:
        return self._put(("end", self._epoch))

    def interrupt(self) -> bool:
        """Drop queued speech at once; the next frame shows a closed mouth."""
        with self._epoch_lock:
            self._epoch += 1
            epoch = self._epoch
        return self._put(("interrupt", epoch, time.monotonic()))

    def _put(self, command: tuple) -> bool:
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            return False
        return True

    # -- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._t0 = time.monotonic()
            self.backend.prepare(self.avatar)
            self._encoder = self._new_encoder()
            self.state = "streaming"
            self._loop()
            self.state = "stopped" if self._stop.is_set() else "finished"
        except Exception as exc:  # noqa: BLE001 - reported to readers and /stats, never raised
            log.exception("session %s failed", self.id)
            self.error = f"generation failed: {type(exc).__name__}: {exc}"
            self.state = "failed"
            self.telemetry.count("session_errors")
        finally:
            self.log.close(self.error)
            self._fire_init()

    def _new_encoder(self) -> StreamEncoder:
        s = self.settings
        return StreamEncoder(self.avatar.size, s.fps, self.sample_rate, keyint=s.keyint,
                             max_frames=s.max_segment_frames, preset=s.preset, crf=s.crf)

    def _loop(self) -> None:
        wait = 0.0
        while not self._stop.is_set():
            self._drain(wait)
            step = self._next_live() if self.live else self._next_clip()
            self._queued_out = self.speech.queued_seconds()
            if step is DONE:
                self._emit_final()
                return
            if isinstance(step, float):
                wait = step
                continue
            wait = 0.0
            self._emit(step)
            if not self.live:
                self.log.wait_for_room(self._stop)

    def _drain(self, timeout: float) -> None:
        """Apply waiting commands; block up to `timeout` s for the first one."""
        try:
            command = self._commands.get(timeout=timeout) if timeout > 0 else self._commands.get_nowait()
        except queue.Empty:
            return
        for _ in range(DRAIN_MAX):
            self._apply(command)
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return

    def _apply(self, command: tuple) -> None:
        """Apply one command; speech it carried moves from the commands' count to the queue's."""
        kind, epoch = command[0], command[1]
        if epoch >= self._epoch or kind == "interrupt":  # else queued before an interrupt: dropped
            self._handle(command)
        if kind in ("pcm", "say"):
            self._queued_out = self.speech.queued_seconds()
            self._release(command[-1])

    def _handle(self, command: tuple) -> None:
        kind = command[0]
        if kind == "pcm":
            self.speech.push(command[2], command[3], command[4])
            self._last_pcm = time.monotonic()
        elif kind == "say":
            self._add_clip(command[2])
        elif kind == "end":
            self.speech.end()
        elif kind == "interrupt":
            self.speech.clear()
            self._interrupt_at = command[2]

    def _add_clip(self, speech: Speech) -> None:
        """Mouth features of a whole utterance, and its audio at the session rate."""
        start = time.perf_counter()
        features = features_for(self.backend, speech, self.settings.fps)
        self.telemetry.observe("features_ms", (time.perf_counter() - start) * 1000)
        self.speech.add_clip(features, clip_pcm(speech.audio, self.sample_rate, len(features), self.settings.fps))

    # -- planning ------------------------------------------------------------------------------
    def _next_clip(self) -> Step | _Done:
        if not self.speech.ready():
            return DONE
        count = self.settings.first_batch if self.produced == 0 else self.settings.batch
        return Step(self.speech.take(self.produced, count, lead=self.settings.audio_lead))

    def _next_live(self) -> Step | float:
        """The next batch of a live stream, or how long to wait for one (s)."""
        s, now = self.settings, time.monotonic()
        self._resync(now)
        if self._interrupt_at is not None:
            step = Step(self.speech.silence(self.produced, 1, self._idle_rows[:1]), self._interrupt_at)
            self._interrupt_at = None
            return step
        if self.speech.live_open and now - self._last_pcm > s.live_silence_end_s:
            self.speech.end()
        ready = self.speech.ready()
        if ready:
            offset = -(s.live_lead_frames + s.live_speech_ahead)
        else:
            offset = s.live_wait_frames if self.speech.live_open else -s.live_lead_frames
        due = self._due_count(now, offset)
        if due <= 0:
            return max(0.001, self._t0 + (self.produced + offset) / s.fps - now)
        if ready:
            return Step(self.speech.take(self.produced, min(due, ready, s.live_batch)))
        count = min(due, s.live_batch)
        return Step(self.speech.silence(self.produced, count, self._idle_rows[:count]))

    def _due_count(self, now: float, offset: int) -> int:
        """Frames from `produced` on whose time (frame k at t0 + (k + offset) / fps) has come."""
        return int(math.floor((now - self._t0) * self.settings.fps - offset)) - self.produced + 1

    def _resync(self, now: float) -> None:
        """Far behind the clock (the machine stalled): move the clock instead of bursting frames."""
        behind = (now - self._t0) - self.produced / self.settings.fps
        if behind > self.settings.live_resync_s:
            self._t0 = now - self.produced / self.settings.fps
            self.telemetry.count("live_resyncs")

    # -- output --------------------------------------------------------------------------------
    def _emit(self, step: Step) -> None:
        """Render, encode and publish one batch."""
        n = len(step.taken.features)
        start = time.perf_counter()
        frames = self._render(self.produced, step.taken.features)
        rendered = time.perf_counter()
        segments = self._encoder.encode(frames, step.taken.pcm)
        encoded = time.perf_counter()
        self.telemetry.observe("render_ms_per_frame", (rendered - start) * 1000 / n)
        self.telemetry.observe("encode_ms_per_frame", (encoded - rendered) * 1000 / n)
        self._publish(segments, {"arrivals": step.taken.arrivals, "interrupt_at": step.interrupt_at,
                                 "speech": bool(np.any(step.taken.features))})
        self.produced += n
        self.telemetry.frames(n)

    def _emit_final(self) -> None:
        self._publish(self._encoder.finish(), {})

    def _publish(self, segments: list, meta: dict) -> None:
        if self._encoder.init is not None and not self.log.mime_ready:
            self.log.set_init(self._encoder.init)
            self.telemetry.observe("first_segment_ms", (time.monotonic() - self.created_at) * 1000)
            self._fire_init()
        for i, segment in enumerate(segments):
            if i == len(segments) - 1:
                segment.meta.update(meta)
            self.log.append(segment)

    def _render(self, first: int, features: np.ndarray) -> np.ndarray:
        """Frames first.. of the stream: (B, H, W, 3) uint8 BGR."""
        numbers = np.arange(first, first + len(features))
        motion = None
        if self.settings.idle and not self.avatar.is_video:
            motion = idle_motion(numbers, self.settings.fps, self.settings.seed)
        sources = self.avatar.source_index(numbers, self.settings.fps)
        return self.backend.render(self.avatar, features, sources, idle=motion)

    def _fire_init(self) -> None:
        with self._epoch_lock:
            callbacks, self._init_callbacks = self._init_callbacks, []
        for callback in callbacks:
            callback(self.error)

    # -- reporting -----------------------------------------------------------------------------
    @property
    def mime(self) -> str | None:
        return None if self._encoder is None else self._encoder.mime

    def segment_sent(self, segment) -> None:
        """A reader sent `segment` (event-loop thread): record the latencies it closes, once."""
        meta = segment.meta
        if meta.get("sent"):
            return
        meta["sent"] = True
        now = time.monotonic()
        if not self.first_sent:
            self.first_sent = True
            self.telemetry.observe("first_frame_sent_ms", (now - self.created_at) * 1000)
        for arrived in meta.get("arrivals", ()):
            self.telemetry.observe("live_chunk_to_frame_ms", (now - arrived) * 1000)
        if meta.get("interrupt_at") is not None:
            self.telemetry.observe("interrupt_to_closed_ms", (now - meta["interrupt_at"]) * 1000)

    def info(self) -> dict:
        """State for the API: kind, frames made, seconds, readers, queue depths."""
        return {"id": self.id, "avatar_id": self.avatar_id, "live": self.live, "state": self.state,
                "error": self.error, "fps": self.settings.fps, "sample_rate": self.sample_rate,
                "frames": self.produced, "seconds": self.produced / self.settings.fps, "mime": self.mime,
                "queued_speech_s": round(self.queued_s, 3),
                "commands_queued": self._commands.qsize(), **self.log.depth()}


def clip_pcm(audio: Audio, rate: int, frames: int, fps: int) -> np.ndarray:
    """An utterance's audio at `rate` Hz, cut or padded to its frames' span: (frames*rate/fps,)."""
    samples = resample(audio.samples, audio.sample_rate, rate) if audio.sample_rate != rate else audio.samples
    span = int(round(frames * rate / fps))
    if len(samples) >= span:
        return np.ascontiguousarray(samples[:span], np.float32)
    return np.concatenate([samples, np.zeros(span - len(samples), np.float32)]).astype(np.float32)
