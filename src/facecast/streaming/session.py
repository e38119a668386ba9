"""A speech session: typed commands in, rendered batches out, on a worker thread.

Two kinds:
  clip  - one utterance (a file or text) rendered as fast as readers take it, then the stream ends;
  live  - runs in real time (paced by a LiveClock) until stopped: utterances (live PCM pushed by a
          voice agent, or text / files) are shown as they come, and between them the avatar idles
          (closed mouth, blinks) over silent audio, so the stream never stalls.
Audio is the master clock: output frame f carries output samples [f*sr/fps, (f+1)*sr/fps).
Commands (streaming.commands) come from any thread; batches go to the session's `output`
(streaming.output), which transports subscribe to (transports.fmp4 for fMP4 over HTTP).
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
from facecast.audio.tts import Speech
from facecast.avatar.model import Avatar
from facecast.engine import features_for, render_batch
from facecast.lipsync.base import LipsyncBackend
from facecast.streaming.clock import LiveClock
from facecast.streaming.commands import EndOfUtterance, Interrupt, PcmChunk, Say, SpeechCommand, Wake
from facecast.streaming.lifecycle import ENDED, WorkerSession
from facecast.streaming.output import MediaBatch, SessionOutput
from facecast.streaming.speech import SpeechQueue, TakenFrames
from facecast.streaming.telemetry import Telemetry

log = logging.getLogger(__name__)

COMMAND_QUEUE = 4096  # commands (PCM chunks, controls) waiting for the worker at most
DRAIN_MAX = 256  # commands applied between two batches at most ...
DRAIN_AUDIO_S = 0.5  # ... and live audio analysed between two batches at most (s; a chunk is not split)


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




@dataclass
class PlannedBatch:
    """What the worker renders next: frames taken from the speech queue, and the interrupt
    (time.monotonic() s) whose closed mouth its first frame shows, if any."""

    taken: TakenFrames
    interrupt_at: float | None = None


class Session(WorkerSession):
    """One stream of one avatar. Commands are thread-safe; the worker renders into `output`.

    live: a real-time session (else a clip that ends); sample_rate: output audio rate in Hz (the
    transport's choice, e.g. an AAC rate for fMP4); created_at: time.monotonic() of the request
    that created it (for time-to-first-frame); clock: the live pacer (a LiveClock by default).
    """

    def __init__(self, sid: str, avatar: Avatar, avatar_id: str, backend: LipsyncBackend, *, live: bool,
                 sample_rate: int, settings: StreamSettings, telemetry: Telemetry, created_at: float,
                 clock: LiveClock | None = None):
        super().__init__(f"facecast-session-{sid[:6]}", telemetry)
        self.id, self.avatar, self.avatar_id, self.live = sid, avatar, avatar_id, live
        self.settings, self.created_at, self.sample_rate = settings, created_at, sample_rate
        self.backend = backend
        self.output = SessionOutput()
        columns = backend.silence_features(1).shape[1]
        self.speech = SpeechQueue(self.sample_rate, settings.fps, columns, backend.stream_features)
        self.clock = clock or LiveClock(settings.fps, settings.live_resync_s)
        self.produced = 0  # frames made
        self.samples_out = 0  # samples made
        self.audio_connected = False  # a live-audio WebSocket feeds this session
        self._idle_rows = backend.silence_features(settings.live_batch)
        self._commands: queue.Queue[SpeechCommand] = queue.Queue(maxsize=COMMAND_QUEUE)
        self._accounting = threading.Lock()  # guards _epoch, _queued_in and the room doorbells
        self._epoch = 0  # bumped by every interrupt; older speech commands are dropped
        self._queued_in = 0.0  # s of speech (PCM, utterances) in commands not yet applied
        self._queued_out = 0.0  # s of speech queued in self.speech (written by the worker only)
        self._room_bells: list = []  # Channels rung when queued speech drops (PCM back-pressure)
        self._interrupt_at: float | None = None
        self._last_pcm = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, first: Speech | None = None) -> None:
        """Start generating; `first` is the clip to show (a live session may start without)."""
        if first is not None:
            self._commands.put_nowait(Say(first, 0.0))
        super().start()

    def _wake(self) -> None:
        self._put(Wake(self._epoch))

    # -- commands (any thread) -----------------------------------------------------------------
    def send(self, command: SpeechCommand) -> bool:
        """Apply `command` on the worker, in order; False when it does not fit (see say, push_pcm)."""
        if isinstance(command, (Say, PcmChunk)):
            if not self._reserve(command.seconds):
                return False
            if not self._put(command):
                self._release(command.seconds)
                return False
            return True
        return self._put(command)

    def say(self, speech: Speech) -> bool:
        """Queue an utterance (text or file) after what is queued. False when it does not fit in
        max_queued_s seconds of waiting speech (or the command queue is full)."""
        return self.send(Say(speech, speech.audio.duration, self._epoch))

    def push_pcm(self, samples: np.ndarray, rate: int) -> bool:
        """Queue live audio: samples (n,) float32 mono at `rate` Hz. False when too much waits."""
        return self.send(PcmChunk(samples, rate, time.monotonic(), self._epoch))

    def end_utterance(self) -> bool:
        return self.send(EndOfUtterance(self._epoch))

    def interrupt(self) -> bool:
        """Drop queued speech at once; the next frame shows a closed mouth."""
        with self._accounting:
            self._epoch += 1
            epoch = self._epoch
        return self.send(Interrupt(time.monotonic(), epoch))

    def notify_room(self, bell) -> None:
        """Ring `bell` (a streaming.queues.Channel) once queued speech drops or the session ends:
        a PCM pusher that was refused awaits it instead of polling."""
        with self._accounting:
            if self.state in ENDED:
                bell.put(True)
            else:
                self._room_bells.append(bell)

    @property
    def epoch(self) -> int:
        """Interrupts so far: speech sent under an older epoch is dropped."""
        return self._epoch

    @property
    def queued_s(self) -> float:
        """Seconds of speech waiting: in commands not yet applied plus queued and not yet shown."""
        return self._queued_in + self._queued_out

    def _reserve(self, seconds: float) -> bool:
        """Count `seconds` of speech as waiting, unless that would pass max_queued_s."""
        with self._accounting:
            if self._queued_in + self._queued_out + seconds > self.settings.max_queued_s:
                return False
            self._queued_in += seconds
        return True

    def _release(self, seconds: float) -> None:
        with self._accounting:
            left = self._queued_in - seconds
            self._queued_in = left if left > 1e-9 else 0.0  # no float residue of many chunks

    def _put(self, command: SpeechCommand) -> bool:
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            return False
        return True

    def _ring_room(self) -> None:
        with self._accounting:
            bells, self._room_bells = self._room_bells, []
        for bell in bells:
            bell.put(True)

    # -- the worker thread ------------------------------------------------------------------
    def _work(self) -> None:
        self.clock.start()
        self.backend.prepare(self.avatar)
        self.state = "streaming"
        wait = 0.0
        while not self.stopping:
            self._drain(wait)
            batch = self._next_live() if self.live else self._next_clip()
            self._set_queued_out()
            if batch is None:  # a clip has shown all of its speech
                self.output.end()
                return
            if isinstance(batch, float):
                wait = batch
                continue
            wait = 0.0
            self._emit(batch)
            if not self.live:
                self.output.wait_for_room(self._stopping)

    def _finish(self) -> None:
        self.output.close(self.error)
        self._ring_room()

    def _drain(self, timeout: float) -> None:
        """Apply waiting commands (DRAIN_MAX, or DRAIN_AUDIO_S of live audio, at most: the rest wait
        for the next drain, after the next batch); block up to `timeout` s for the first one. A run
        of live chunks is analysed as one push: a backlog of thousands of 20 ms chunks (a TTS runs
        ahead of real time) costs what its audio costs, not a fixed price per chunk, and the next
        frame never waits for more than DRAIN_AUDIO_S of it to be analysed."""
        try:
            command = self._commands.get(timeout=timeout) if timeout > 0 else self._commands.get_nowait()
        except queue.Empty:
            return
        commands = [command]
        audio_s = command.seconds if isinstance(command, PcmChunk) else 0.0
        while len(commands) < DRAIN_MAX and audio_s < DRAIN_AUDIO_S:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                break
            if isinstance(commands[-1], PcmChunk):
                audio_s += commands[-1].seconds
        run: list[PcmChunk] = []
        for command in commands:
            if run and not (isinstance(command, PcmChunk) and command.rate == run[0].rate
                            and command.epoch == run[0].epoch):
                self._apply_pcm(run)
                run = []
            if isinstance(command, PcmChunk):
                run.append(command)
            else:
                self._apply(command)
        if run:
            self._apply_pcm(run)

    def _apply_pcm(self, chunks: list[PcmChunk]) -> None:
        """Apply consecutive live chunks of one rate and epoch together."""
        if chunks[0].epoch >= self._epoch:  # else sent before an interrupt: dropped
            self.speech.push_chunks([(c.samples, c.arrived) for c in chunks], chunks[0].rate)
            self._last_pcm = self.clock.now()
        self._set_queued_out()
        for chunk in chunks:  # one by one, as they were reserved: a sum would leave a rounding residue
            self._release(chunk.seconds)
        self._ring_room()  # the command queue has room again

    def _apply(self, command: SpeechCommand) -> None:
        """Apply one command; speech it carried moves from the commands' count to the queue's."""
        if command.epoch >= self._epoch or isinstance(command, Interrupt):  # else made before an interrupt
            self._handle(command)
        if isinstance(command, Say):
            self._set_queued_out()
            self._release(command.seconds)
            self._ring_room()  # the command queue has room again

    def _handle(self, command: SpeechCommand) -> None:
        if isinstance(command, Say):
            self._add_clip(command.speech)
        elif isinstance(command, EndOfUtterance):
            self.speech.end()
        elif isinstance(command, Interrupt):
            self.speech.clear()
            self._interrupt_at = command.at

    def _set_queued_out(self) -> None:
        before, self._queued_out = self._queued_out, self.speech.queued_seconds()
        if self._queued_out < before:
            self._ring_room()

    def _add_clip(self, speech: Speech) -> None:
        """Mouth features of a whole utterance, and its audio at the session rate."""
        start = time.perf_counter()
        features = features_for(self.backend, speech, self.settings.fps)
        self.telemetry.observe("features_ms", (time.perf_counter() - start) * 1000)
        self.speech.add_clip(features, clip_pcm(speech.audio, self.sample_rate, len(features), self.settings.fps))

    # -- planning ------------------------------------------------------------------------------
    def _next_clip(self) -> PlannedBatch | None:
        if not self.speech.ready():
            return None
        count = self.settings.first_batch if self.produced == 0 else self.settings.batch
        return PlannedBatch(self.speech.take(self.produced, count, lead=self.settings.audio_lead))

    def _next_live(self) -> PlannedBatch | float:
        """The next batch of a live stream, or how long to wait for one (s)."""
        s, now = self.settings, self.clock.now()
        if self.clock.resync(self.produced, now):  # far behind (a stall): move the clock, no burst
            self.telemetry.count("live_resyncs")
        if self._interrupt_at is not None:
            batch = PlannedBatch(self.speech.silence(self.produced, 1, self._idle_rows[:1]), self._interrupt_at)
            self._interrupt_at = None
            return batch
        if self.speech.live_open and now - self._last_pcm > s.live_silence_end_s:
            self.speech.end()
        ready = self.speech.ready()
        if ready:
            offset = -(s.live_lead_frames + s.live_speech_ahead)
        else:
            offset = s.live_wait_frames if self.speech.live_open else -s.live_lead_frames
        due = self.clock.due(self.produced, offset, now)
        if due <= 0:
            return self.clock.wait_s(self.produced, offset, now)
        if ready:
            return PlannedBatch(self.speech.take(self.produced, min(due, ready, s.live_batch)))
        count = min(due, s.live_batch)
        return PlannedBatch(self.speech.silence(self.produced, count, self._idle_rows[:count]))

    # -- output --------------------------------------------------------------------------------
    def _emit(self, batch: PlannedBatch) -> None:
        """Render one batch (through the engine's batch path) and hand it to the output."""
        taken, s = batch.taken, self.settings
        n = len(taken.features)
        start = time.perf_counter()
        frames = render_batch(self.backend, self.avatar, taken.features, self.produced, s.fps, s.idle, s.seed)
        self.telemetry.observe("render_ms_per_frame", (time.perf_counter() - start) * 1000 / n)
        self.output.write(MediaBatch(self.produced, frames, s.fps, self.samples_out, taken.pcm, self.sample_rate,
                                     bool(np.any(taken.features)), tuple(taken.arrivals), batch.interrupt_at,
                                     taken.finished, taken.spoken))
        self.produced += n
        self.samples_out += len(taken.pcm)
        self.telemetry.frames(n)

    # -- reporting -----------------------------------------------------------------------------
    def info(self) -> dict:
        """State for the API: kind, frames made, seconds, readers, queue depths."""
        return {"id": self.id, "avatar_id": self.avatar_id, "live": self.live, "state": self.state,
                "error": self.error, "fps": self.settings.fps, "sample_rate": self.sample_rate,
                "frames": self.produced, "seconds": self.produced / self.settings.fps, "mime": None,
                "queued_speech_s": round(self.queued_s, 3), "commands_queued": self._commands.qsize(),
                "readers": 0, **self.output.info()}


def clip_pcm(audio: Audio, rate: int, frames: int, fps: int) -> np.ndarray:
    """An utterance's audio at `rate` Hz, cut or padded to its frames' span: (frames*rate/fps,)."""
    samples = resample(audio.samples, audio.sample_rate, rate) if audio.sample_rate != rate else audio.samples
    span = int(round(frames * rate / fps))
    if len(samples) >= span:
        return np.ascontiguousarray(samples[:span], np.float32)
    return np.concatenate([samples, np.zeros(span - len(samples), np.float32)]).astype(np.float32)
