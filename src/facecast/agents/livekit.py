"""facecast as the avatar of a LiveKit agent (livekit-agents 1.8; pip install "facecast[livekit]").

FacecastVideoGenerator is a livekit.agents.voice.avatar.VideoGenerator built on LiveAvatar: the
agent's speech goes in through push_audio(); out of it come, in real time, the avatar's video frames
(idle between utterances), the avatar's own copy of the speech audio with its frames, and an
AudioSegmentEnd after the last frame of each utterance. clear_buffer() interrupts: queued speech is
dropped and the next frame shows a closed mouth.

An AvatarRunner publishes what the generator makes into a room and reports playback back to the
agent (playback position, interrupted). Two places to run it:
  start_in_process(room, agent_session)  the agent's own process: its audio goes to a QueueAudioOutput;
  start_worker(room)                     a separate avatar participant: the agent streams audio to it
                                         with a DataStreamAudioOutput (use_avatar_worker), and they
                                         talk through the lk.clear_buffer / lk.playback_finished RPCs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import cv2
import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (AudioReceiver, AudioSegmentEnd, AvatarRunner, DataStreamAudioOutput,
                                         DataStreamAudioReceiver, QueueAudioOutput, VideoGenerator)
from livekit.agents.voice.avatar import AvatarOptions as RunnerOptions

from facecast.agents.avatar import AvatarOptions, LiveAvatar
from facecast.streaming.output import MediaBatch
from facecast.streaming.speech import frame_samples

log = logging.getLogger(__name__)

INT16_SCALE = 32768.0  # full scale of 16-bit PCM
CATCH_UP_BATCHES = 2  # batches waiting beyond which idle ones are skipped (the reader was held up)
AVATAR_IDENTITY = "facecast-avatar"  # the avatar worker's participant identity, by default

MediaItem = rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd


class FacecastVideoGenerator(VideoGenerator):
    """A LiveKit VideoGenerator: agent speech in, the avatar's frames and audio out, in real time.

    options: what the avatar looks like (agents.avatar.AvatarOptions); utterances end only where the
    agent says so (an AudioSegmentEnd), so end_after_silence_s is set to None. `await start()`
    before handing it to an AvatarRunner; `await aclose()` at the end.
    """

    def __init__(self, options: AvatarOptions = AvatarOptions()):
        self.avatar = LiveAvatar(replace(options, end_after_silence_s=None), keep_speech=True)
        self._open = False  # audio has come since the last segment end or clear
        self._pending_ends = 0  # segments the agent ended that are not yet shown to their last frame
        self._shown = 0  # utterances_shown of the last batch read
        self._cleared_at: float | None = None  # time.monotonic() of a clear_buffer whose batch is still to come
        self._clears = 0  # clear_buffer calls so far

    async def start(self) -> None:
        """Prepare the avatar (off the event loop) and start its live session."""
        await self.avatar.start()

    @property
    def options(self) -> AvatarOptions:
        return self.avatar.options

    def runner_options(self) -> RunnerOptions:
        """The AvatarRunner's options for this avatar: its size, fps and audio rate (mono)."""
        width, height = self.avatar.size
        return RunnerOptions(video_width=width, video_height=height, video_fps=self.options.fps,
                             audio_sample_rate=self.options.sample_rate, audio_channels=1)

    # -- speech in --------------------------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        """Queue a frame of the agent's speech (any rate and channel count), or end the segment.
        Waits while the avatar holds max_queued_s of speech (back-pressure)."""
        if isinstance(frame, AudioSegmentEnd):
            if self._open:  # a segment with no audio (the rest of a cleared one) shows nothing
                self._open = False
                self._pending_ends += 1
                self.avatar.end_utterance()
            return
        self._open = True
        await self.avatar.push_audio(pcm_of(frame), frame.sample_rate, drop_on_interrupt=True)

    def clear_buffer(self) -> None:
        """Interrupt: drop queued speech and the frames already made of it; back to idle at once."""
        self._open = False
        self._pending_ends = 0
        self._cleared_at = time.monotonic()
        self._clears += 1
        self.avatar.interrupt()

    # -- media out --------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[MediaItem]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[MediaItem]:
        async for batch in self.avatar.media():
            ends, self._shown = batch.utterances_shown - self._shown, batch.utterances_shown
            if self._stale(batch) or (self._behind() and not batch.utterance and not ends):
                continue  # dropped speech, or idle frames skipped to catch up after a stall
            clears = self._clears
            for item in self._items(batch, ends):
                if self._clears != clears:  # cleared while this batch went out: the rest is stale
                    break
                yield item

    def _stale(self, batch: MediaBatch) -> bool:
        """The batch was made before the last clear_buffer was answered (of dropped speech)."""
        if self._cleared_at is None:
            return False
        if batch.interrupt_at is None or batch.interrupt_at < self._cleared_at:
            return True
        self._cleared_at = None
        return False

    def _behind(self) -> bool:
        """More batches wait than the avatar makes ahead of its clock: this reader was held up."""
        return self.avatar.media_waiting > CATCH_UP_BATCHES

    def _items(self, batch: MediaBatch, ends: int) -> list[MediaItem]:
        """A batch as LiveKit frames: per video frame the frame, then its audio (speech only: idle
        frames carry no audio, so the runner's playback position counts speech alone); then an
        AudioSegmentEnd for each agent segment the batch shows the last frame of (`ends`
        utterances were shown to their end since the batch before)."""
        items: list[MediaItem] = []
        height, width = batch.frames.shape[1:3]
        offset = 0
        for i, frame in enumerate(batch.frames):
            items.append(rtc.VideoFrame(width, height, rtc.VideoBufferType.BGRA,
                                        cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA).tobytes()))
            n = frame_samples(batch.first_frame + i, batch.sample_rate, batch.fps)
            if batch.utterance:
                items.append(audio_frame(batch.pcm[offset: offset + n], batch.sample_rate))
            offset += n
        ends = min(ends, self._pending_ends)
        self._pending_ends -= ends
        items.extend(AudioSegmentEnd() for _ in range(ends))
        return items

    async def aclose(self) -> None:
        """Stop the avatar's session (idempotent)."""
        await self.avatar.close()


def pcm_of(frame: rtc.AudioFrame) -> np.ndarray:
    """A LiveKit audio frame (int16, interleaved) as (n,) float32 mono in [-1, 1]."""
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    return samples.mean(axis=1, dtype=np.float32) / INT16_SCALE


async def espeak_frames(text: str, rate: int = 24_000, frame_ms: int = 20) -> AsyncIterator[rtc.AudioFrame]:
    """`text` spoken by facecast's offline voice (espeak-ng) as LiveKit frames of `frame_ms` ms at
    `rate` Hz: an agent with no TTS plugin can speak with AgentSession.say(text, audio=...)."""
    from facecast.audio.resampling import resample
    from facecast.audio.tts import synthesize

    speech = await asyncio.get_running_loop().run_in_executor(None, synthesize, text)
    pcm = resample(speech.audio.samples, speech.audio.sample_rate, rate)
    step = rate * frame_ms // 1000
    for i in range(0, len(pcm), step):
        yield audio_frame(pcm[i: i + step], rate)


def audio_frame(pcm: np.ndarray, rate: int) -> rtc.AudioFrame:
    """(n,) float32 mono in [-1, 1] at `rate` Hz as a LiveKit int16 mono frame."""
    data = np.clip(np.round(pcm * INT16_SCALE), -32768, 32767).astype(np.int16)
    return rtc.AudioFrame(data.tobytes(), rate, 1, len(data))


# -- running an AvatarRunner ---------------------------------------------------------------------
@dataclass
class RunningAvatar:
    """An avatar publishing into a room: the runner, its generator and where its audio comes from."""

    runner: AvatarRunner
    generator: FacecastVideoGenerator
    audio: AudioReceiver

    async def aclose(self) -> None:
        """Stop the runner (it unpublishes nothing: leaving the room is the caller's), then the avatar."""
        await self.runner.aclose()
        await self.generator.aclose()


async def start_runner(room: rtc.Room, audio: AudioReceiver, options: AvatarOptions) -> RunningAvatar:
    """Start an avatar and an AvatarRunner that reads `audio` and publishes into `room`."""
    generator = FacecastVideoGenerator(options)
    await generator.start()
    runner = AvatarRunner(room, audio_recv=audio, video_gen=generator, options=generator.runner_options())
    try:
        await runner.start()
    except BaseException:
        await generator.aclose()
        raise
    return RunningAvatar(runner, generator, audio)


async def start_in_process(room: rtc.Room, agent_session=None, options: AvatarOptions = AvatarOptions()
                           ) -> RunningAvatar:
    """The avatar in the agent's own process: the agent's speech goes to a QueueAudioOutput read by
    an AvatarRunner that publishes the avatar's video and audio as the agent's tracks.

    agent_session: a livekit.agents.AgentSession, not yet started (its output.audio becomes the
    queue, so RoomIO publishes no audio track of its own); None to wire `.audio` yourself.
    """
    audio = QueueAudioOutput(sample_rate=options.sample_rate)
    avatar = await start_runner(room, audio, options)
    if agent_session is not None:
        agent_session.output.audio = audio
    return avatar


async def start_worker(room: rtc.Room, *, sender_identity: str | None = None,
                       options: AvatarOptions = AvatarOptions()) -> RunningAvatar:
    """The avatar as its own participant (an avatar worker joined to the agent's room): audio comes
    from the agent's DataStreamAudioOutput (lk.audio_stream), clear_buffer as the lk.clear_buffer
    RPC, and playback is reported with lk.playback_finished. sender_identity: the agent's
    identity; None for the first agent participant. Waits for the agent to be in the room."""
    return await start_runner(room, DataStreamAudioReceiver(room, sender_identity=sender_identity), options)


def use_avatar_worker(room: rtc.Room, agent_session=None, *, avatar_identity: str = AVATAR_IDENTITY,
                      sample_rate: int | None = None) -> DataStreamAudioOutput:
    """The agent's side of a separate avatar worker: a DataStreamAudioOutput that streams the
    agent's speech to `avatar_identity`; set as agent_session.output.audio (before it starts).
    Playback starts when the avatar says so (lk.playback_started): when its first speech frame is
    published, not when the agent sent the audio."""
    audio = DataStreamAudioOutput(room, destination_identity=avatar_identity, sample_rate=sample_rate,
                                  wait_playback_start=True)
    if agent_session is not None:
        agent_session.output.audio = audio
    return audio

