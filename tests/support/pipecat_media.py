"""pipecat pipelines for tests and benchmarks: what a processor pushes, with times, and an output
transport that plays audio in real time (no network, no sound card).

Pushed (an observer): every frame a processor pushed downstream, with time.monotonic().
PacedOutput: pipecat's BaseOutputTransport with a pretend device: write_audio_frame returns once
    the chunk has played (chunks play back to back, in real time), write_video_frame records the
    image drawn. So the transport's own machinery (audio queue, audio-synced images, the video
    task's framerate, bot-speaking detection) runs as it does in front of a real peer.
script(): frames to send for run_test that can wait for a condition (a lazy sequence of frames).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterable, Iterator

import numpy as np
from pipecat.frames.frames import Frame, OutputAudioRawFrame, OutputImageRawFrame, TTSAudioRawFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.tests.utils import SleepFrame
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

POLL_S = 0.02  # s between looks at a condition a script waits for


class Pushed(BaseObserver):
    """Frames `source` pushed in `direction`: (time.monotonic(), frame), in order."""

    def __init__(self, source, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        super().__init__()
        self.source, self.direction = source, direction
        self.items: list[tuple[float, Frame]] = []

    async def on_push_frame(self, data: FramePushed):
        if data.source is self.source and data.direction == self.direction:
            self.items.append((time.monotonic(), data.frame))

    def of(self, kind, since: float = 0.0, until: float = float("inf")) -> list:
        return [f for t, f in self.items if isinstance(f, kind) and since <= t < until]

    def times(self, kind, since: float = 0.0) -> list[float]:
        return [t for t, f in self.items if isinstance(f, kind) and t >= since]

    def count(self, kind) -> int:
        return sum(isinstance(f, kind) for _, f in self.items)


def script(*steps) -> Iterator[Frame]:
    """Frames for run_test's frames_to_send: each step is a Frame, a list of frames, or a
    `wait(seconds, condition)`; the frames after a wait go once the condition holds (or it times out)."""
    for step in steps:
        if isinstance(step, Frame):
            yield step
        elif callable(step):
            yield from step()
        else:
            yield from step


def wait(seconds: float, condition: Callable[[], bool]) -> Callable[[], Iterable[Frame]]:
    """A script step: SleepFrames until condition() holds, `seconds` at most."""

    def frames():
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            yield SleepFrame(sleep=POLL_S)

    return frames


def mark(times: dict, name: str) -> Callable[[], Iterable[Frame]]:
    """A script step that notes time.monotonic() under `name` (when the next frame is sent)."""

    def frames():
        times[name] = time.monotonic()
        return ()

    return frames


def tts_frames(samples: np.ndarray, rate: int, chunk_s: float = 0.02) -> list[TTSAudioRawFrame]:
    """samples (n,) float32 in [-1, 1] as a TTS sends them: int16 mono frames of chunk_s s."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    step = max(1, int(rate * chunk_s))
    return [TTSAudioRawFrame(pcm[i: i + step].tobytes(), rate, 1) for i in range(0, len(pcm), step)]


def pcm_of(frames: list[OutputAudioRawFrame]) -> np.ndarray:
    """The audio of `frames` as one (n,) float32 array."""
    if not frames:
        return np.zeros(0, np.float32)
    return np.concatenate([np.frombuffer(f.audio, "<i2") for f in frames]).astype(np.float32) / 32768.0


class PacedOutput(BaseOutputTransport):
    """An output transport in front of a pretend device that plays audio in real time.

    audio: (start s, samples) of each chunk as it plays (time.monotonic()); video: (time s, image)
    of each image drawn (the transport's video task draws the latest image at its framerate).
    """

    def __init__(self, size: tuple[int, int], fps: int, rate: int = 24_000, **kwargs):
        params = TransportParams(audio_out_enabled=True, audio_out_sample_rate=rate, video_out_enabled=True,
                                 video_out_is_live=False, video_out_width=size[0], video_out_height=size[1],
                                 video_out_framerate=fps, audio_out_end_silence_secs=0)
        super().__init__(params, **kwargs)
        self.audio: list[tuple[float, int]] = []
        self.video: list[tuple[float, OutputImageRawFrame]] = []
        self._played_until = 0.0

    async def start(self, frame):
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        start = max(time.monotonic(), self._played_until)
        self._played_until = start + frame.num_frames / frame.sample_rate
        self.audio.append((start, frame.num_frames))
        await asyncio.sleep(max(0.0, self._played_until - time.monotonic()))
        return True

    async def write_video_frame(self, frame: OutputImageRawFrame) -> bool:
        self.video.append((time.monotonic(), frame))
        return True

    def played_at(self, sample: int) -> float | None:
        """time.monotonic() at which audio sample `sample` (of all the audio written) played."""
        done = 0
        for start, n in self.audio:
            if sample < done + n:
                return start + (sample - done) / self.sample_rate
            done += n
        return None


class PeerlessConnection:
    """What pipecat's SmallWebRTCTransport uses of a SmallWebRTCConnection, without a peer: it
    "connects" when the transport sets up, reads the audio track in real time (as aiortc does) and
    leaves the video track unread (an encoder that has fallen behind: drawn images queue in the
    track). video_writes: (time.monotonic(), image) of each image the transport drew into the track."""

    def __init__(self):
        self.pc_id = "peerless"
        self._handlers: dict[str, Callable] = {}
        self._connected = False
        self.audio_track = self.video_track = None
        self.video_writes: list[tuple[float, OutputImageRawFrame]] = []
        self._reader: asyncio.Task | None = None

    def event_handler(self, name: str):
        def register(handler):
            self._handlers[name] = handler
            return handler
        return register

    def is_connected(self) -> bool:
        return self._connected

    async def connect(self):
        self._connected = True
        await self._handlers["connected"](self)

    async def disconnect(self):
        self._connected = False
        if self._reader is not None:
            self._reader.cancel()

    def audio_input_track(self):
        return None

    video_input_track = screen_video_input_track = audio_input_track

    def replace_audio_track(self, track):
        self.audio_track = track

        async def play():
            while True:
                await track.recv()

        self._reader = asyncio.ensure_future(play())

    def replace_video_track(self, track):
        self.video_track = track
        draw = track.add_video_frame

        def add_video_frame(frame):
            self.video_writes.append((time.monotonic(), frame))
            draw(frame)

        track.add_video_frame = add_video_frame

    def send_app_message(self, message):
        pass

    def ask_to_renegotiate(self, *args, **kwargs):
        pass
