"""facecast as a LiveKit Agents avatar, tested with livekit-agents' own mock room (no server).

The generator alone (what it yields and when), then an AvatarRunner in the agent's process (a
QueueAudioOutput) and as a separate avatar worker (DataStreamAudioOutput -> byte streams + RPCs
-> DataStreamAudioReceiver), as the agent sees them: playback finished events with their position.
Everything runs in real time; tests wait for conditions, with generous limits.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("livekit.agents")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd  # noqa: E402
from support.livekit_rooms import link, mock_room, speech_frames  # noqa: E402
from support.waiting import until  # noqa: E402

from facecast.agents.avatar import AvatarOptions  # noqa: E402
from facecast.agents.livekit import (FacecastVideoGenerator, RunningAvatar, pcm_of, start_in_process,  # noqa: E402
                                     start_worker, use_avatar_worker)

OPTIONS = AvatarOptions(size=256, fps=25, sample_rate=24_000)
FRAME_S = 1 / 25  # s per video frame
WAIT_S = 30.0  # s a condition may take at most (a loaded 2-core machine)


def run(coro, timeout: float = 180.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Published:
    """What a runner pushed into its AV synchronizer: (time.monotonic(), frame), audio and video."""

    def __init__(self, avatar: RunningAvatar):
        self.audio: list[tuple[float, rtc.AudioFrame]] = []
        self.video: list[tuple[float, rtc.VideoFrame]] = []
        sync = avatar.runner.av_sync
        push = sync.push

        async def spy(frame, timestamp=None):
            await push(frame, timestamp)
            (self.audio if isinstance(frame, rtc.AudioFrame) else self.video).append((time.monotonic(), frame))

        sync.push = spy

    def audio_s(self, since: float = 0.0, until: float = float("inf")) -> float:
        """Seconds of speech audio published between times `since` and `until`."""
        return sum(f.duration for t, f in self.audio if since <= t <= until)


def about(seconds: float) -> tuple[float, float]:
    """The span a segment of `seconds` s plays for: whole video frames, the last one or two padded."""
    return seconds - 1e-6, seconds + 2 * FRAME_S + 1e-6


def within_span(value: float, seconds: float) -> bool:
    low, high = about(seconds)
    return low <= value <= high


class Collected:
    """Everything a generator yields, with the time it came: (time.monotonic(), item)."""

    def __init__(self, generator: FacecastVideoGenerator):
        self.items: list[tuple[float, object]] = []
        self.task = asyncio.create_task(self._read(generator))

    async def _read(self, generator):
        async for item in generator:
            self.items.append((time.monotonic(), item))

    def of(self, kind, since: float = 0.0) -> list:
        return [item for t, item in self.items if isinstance(item, kind) and t >= since]

    async def close(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def speak(output, frames, flush: bool = True) -> None:
    """The agent's side: capture a segment's frames (faster than real time, as TTS does), then flush."""
    for frame in frames:
        await output.capture_frame(frame)
    if flush:
        output.flush()


async def ten_interruptions_then_speech(output, published: Published, mid_segment: bool = False):
    """Ten turns of 3 s of speech, each cleared once 0.2 s of it is published and checked to end
    interrupted early; with mid_segment, odd turns are cleared before their flush (flushed after),
    even ones after it. Then 1.5 s of speech is played out: returns (its playout result, when it
    began: time.monotonic())."""
    for turn in range(10):
        begun = time.monotonic()
        cleared_mid_segment = mid_segment and turn % 2 == 1
        await speak(output, speech_frames(3.0, seed=turn), flush=not cleared_mid_segment)
        assert await until(WAIT_S, lambda: published.audio_s(begun) >= 0.2), f"turn {turn}: no audio"
        output.clear_buffer()
        if cleared_mid_segment:
            output.flush()
        finished = await asyncio.wait_for(output.wait_for_playout(), WAIT_S)
        assert finished.interrupted, f"turn {turn}"
        assert 0.1 <= finished.playback_position < 2.0, f"turn {turn}: {finished.playback_position}"
    begun = time.monotonic()
    await speak(output, speech_frames(1.5, seed=99))
    return await asyncio.wait_for(output.wait_for_playout(), WAIT_S), begun


# -- the generator -----------------------------------------------------------------------------------
def test_idle_video_then_speech_with_its_own_audio_then_a_segment_end():
    async def main():
        generator = FacecastVideoGenerator(OPTIONS)
        await generator.start()
        seen = Collected(generator)
        try:
            assert await until(WAIT_S, lambda: len(seen.of(rtc.VideoFrame)) >= 10)
            assert not seen.of(rtc.AudioFrame), "idle frames carry no audio"
            frames = speech_frames(1.0)
            for frame in frames:
                await generator.push_audio(frame)
            await generator.push_audio(AudioSegmentEnd())
            assert await until(WAIT_S, lambda: seen.of(AudioSegmentEnd))
            after_end = time.monotonic()
            assert await until(WAIT_S, lambda: len(seen.of(rtc.VideoFrame, after_end)) >= 10)
        finally:
            await seen.close()
            await generator.aclose()
        audio = seen.of(rtc.AudioFrame)
        assert [f.samples_per_channel for f in audio] == [960] * 25  # one 40 ms frame per video frame
        assert all(f.sample_rate == 24_000 and f.num_channels == 1 for f in audio)
        sent = np.concatenate([pcm_of(f) for f in frames])
        shown = np.concatenate([pcm_of(f) for f in audio])
        np.testing.assert_allclose(shown, sent, atol=2 / 32768)  # the speech itself, not a re-synthesis
        kinds = [type(item) for _, item in seen.items]
        end = kinds.index(AudioSegmentEnd)
        assert kinds[end - 1] is rtc.AudioFrame and kinds.count(AudioSegmentEnd) == 1  # after the last frame
        assert rtc.AudioFrame not in kinds[end:], "idle again after the segment"
        assert all(max(f.width, f.height) <= 256 for f in seen.of(rtc.VideoFrame))

    run(main())


def test_clear_buffer_drops_queued_speech_and_idles_at_once():
    async def main():
        generator = FacecastVideoGenerator(OPTIONS)
        await generator.start()
        seen = Collected(generator)
        try:
            for frame in speech_frames(4.0):
                await generator.push_audio(frame)
            assert await until(WAIT_S, lambda: len(seen.of(rtc.AudioFrame)) >= 10)
            generator.clear_buffer()
            cleared = time.monotonic()
            assert await until(WAIT_S, lambda: len(seen.of(rtc.VideoFrame, cleared)) >= 25)
        finally:
            await seen.close()
            await generator.aclose()
        assert not seen.of(rtc.AudioFrame, cleared), "no speech after clear_buffer"
        assert not seen.of(AudioSegmentEnd), "an interrupted segment is reported by the runner, not ended"
        first = next(t for t, item in seen.items if t >= cleared and isinstance(item, rtc.VideoFrame))
        assert first - cleared < 0.5  # the next frame comes at once (a closed mouth)

    run(main())


# -- an AvatarRunner in the agent's process ----------------------------------------------------------------
def test_in_process_playback_runs_in_real_time_and_reports_its_end():
    async def main():
        room = mock_room()
        avatar = await start_in_process(room, options=OPTIONS)
        published = Published(avatar)
        try:
            output = avatar.audio
            started = time.monotonic()
            await speak(output, speech_frames(3.0))
            finished = await asyncio.wait_for(output.wait_for_playout(), WAIT_S)
            took = time.monotonic() - started
        finally:
            await avatar.aclose()
        assert not finished.interrupted
        assert within_span(finished.playback_position, 3.0)
        assert within_span(published.audio_s(), 3.0)
        times = np.array([t for t, _ in published.audio])
        assert times[-1] - times[0] >= 2.7, "played in real time, not in a burst"
        assert np.median(np.diff(times)) == pytest.approx(FRAME_S, rel=0.1)  # a frame per 40 ms (stalls aside)
        assert took >= 2.8
        assert room.local_participant.publish_track.await_count == 2  # the avatar's audio and video

    run(main())


def test_in_process_interrupt_reports_interrupted_at_the_playback_position():
    async def main():
        avatar = await start_in_process(mock_room(), options=OPTIONS)
        published = Published(avatar)
        try:
            output = avatar.audio
            await speak(output, speech_frames(6.0))
            assert await until(WAIT_S, lambda: published.audio_s() >= 1.0)
            output.clear_buffer()
            played = published.audio_s()
            finished = await asyncio.wait_for(output.wait_for_playout(), WAIT_S)
            cleared = time.monotonic()
            assert await until(WAIT_S, lambda: len([t for t, _ in published.video if t > cleared]) >= 12)
        finally:
            await avatar.aclose()
        assert finished.interrupted
        assert played - FRAME_S <= finished.playback_position <= played + 3 * FRAME_S
        assert 1.0 <= finished.playback_position < 3.0
        assert published.audio_s(cleared) <= 2 * FRAME_S, "speech stops at the interrupt"

    run(main())


def test_in_process_ten_interruptions_then_speech_still_plays():
    async def main():
        avatar = await start_in_process(mock_room(), options=OPTIONS)
        published = Published(avatar)
        output = avatar.audio
        try:
            finished, begun = await ten_interruptions_then_speech(output, published)
        finally:
            await avatar.aclose()
        assert not finished.interrupted
        assert within_span(finished.playback_position, 1.5), finished.playback_position
        assert within_span(published.audio_s(begun), 1.5)

    run(main(), timeout=300)


# -- a separate avatar worker -------------------------------------------------------------------------------
async def worker_pair() -> tuple[RunningAvatar, object, object]:
    """An agent and an avatar worker in one (mock) room: (the worker, the agent's audio output, its room)."""
    agent_room, avatar_room = mock_room("agent"), mock_room("facecast-avatar")
    link(agent_room, avatar_room)
    avatar = await start_worker(avatar_room, sender_identity="agent", options=OPTIONS)
    output = use_avatar_worker(agent_room, avatar_identity="facecast-avatar")
    return avatar, output, avatar_room


def test_worker_plays_segments_and_reports_them_over_rpc():
    async def main():
        avatar, output, avatar_room = await worker_pair()
        published = Published(avatar)
        try:
            results = []
            for seconds in (1.0, 2.0):
                begun = time.monotonic()
                await speak(output, speech_frames(seconds))
                finished = await asyncio.wait_for(output.wait_for_playout(), WAIT_S)
                results.append((finished, begun, time.monotonic()))
        finally:
            await avatar.aclose()
        for (finished, begun, ended), seconds in zip(results, (1.0, 2.0)):
            assert not finished.interrupted
            assert within_span(finished.playback_position, seconds), finished.playback_position
            assert within_span(published.audio_s(begun, ended), seconds)
        methods = [method for method, _ in avatar_room.rpc_calls]
        assert methods.count("lk.playback_finished") == 2

    run(main())


def test_worker_ten_interruptions_then_audio_still_flows():
    """Other avatar plugins stop receiving audio after a few interruptions; this one must not.
    Odd turns interrupt mid-segment (clear_buffer before the flush), even ones after it."""

    async def main():
        avatar, output, avatar_room = await worker_pair()
        published = Published(avatar)
        try:
            finished, begun = await ten_interruptions_then_speech(output, published, mid_segment=True)
        finally:
            await avatar.aclose()
        assert not finished.interrupted
        assert within_span(finished.playback_position, 1.5), finished.playback_position
        assert within_span(published.audio_s(begun), 1.5)
        methods = [method for method, _ in avatar_room.rpc_calls]
        assert methods.count("lk.playback_finished") == 11

    run(main(), timeout=300)
