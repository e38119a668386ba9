"""Sessions' pieces without HTTP: typed commands, the live clock (with a fake time source), re-sync
after a stall, an utterance that ends by itself after silence, and the raw-media subscription."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest
from support.waiting import within

from facecast.audio.pcm import Audio
from facecast.audio.tts import Speech
from facecast.avatar.prepare import prepare
from facecast.demo import demo_portrait
from facecast.lipsync.base import get_backend
from facecast.streaming.clock import LiveClock
from facecast.streaming.commands import CameraFrame, EndOfUtterance, Interrupt, PcmChunk, Say
from facecast.streaming.session import Session, StreamSettings
from facecast.streaming.speech import frame_samples
from facecast.streaming.telemetry import Telemetry

FPS = 25


class FakeTime:
    """A time source the test moves by hand (seconds)."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def avatar():
    return prepare(demo_portrait())


def live_session(avatar, fake: FakeTime | None = None, **settings) -> Session:
    s = StreamSettings(**settings)
    clock = LiveClock(s.fps, s.live_resync_s, now=fake) if fake is not None else None
    return Session("t" * 16, avatar, "a", get_backend("classic"), live=True, sample_rate=16000, settings=s,
                   telemetry=Telemetry(), created_at=time.monotonic(), clock=clock)


# -- commands --------------------------------------------------------------------------------------

def test_commands_are_frozen_and_carry_their_seconds():
    chunk = PcmChunk(np.zeros(8000, np.float32), 16000, arrived=1.0)
    assert chunk.seconds == pytest.approx(0.5) and chunk.epoch == 0
    say = Say(Speech(Audio(np.zeros(22050, np.float32), 22050)), 1.0, epoch=3)
    for command, name in ((chunk, "rate"), (say, "seconds"), (Interrupt(at=2.0), "at"),
                          (CameraFrame(b"x", 0.0), "data")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(command, name, None)
    assert EndOfUtterance() == EndOfUtterance(0) and Interrupt(1.0, 2) != Interrupt(1.0, 3)


def test_speech_sent_before_an_interrupt_is_dropped_unshown(avatar):
    fake = FakeTime()
    session = live_session(avatar, fake)
    loud = (0.3 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    assert session.send(PcmChunk(loud, 16000, time.monotonic(), epoch=0))
    assert session.interrupt()  # epoch 1: the chunk above is now stale
    assert session.send(PcmChunk(loud, 16000, time.monotonic(), epoch=0))  # stale as well
    assert session.queued_s == pytest.approx(2.0)  # counted until the worker applies them
    session.start()
    try:
        assert within(5.0, lambda: session.info()["commands_queued"] == 0 and session.queued_s == 0.0)
        assert not session.speech.ready() and not session.speech.live_open
    finally:
        session.stop()
        session.join(5)


def test_every_command_of_a_long_backlog_is_applied(avatar):
    """More commands than one drain applies (DRAIN_MAX) wait: none is lost (one was, each drain)."""
    session = live_session(avatar, max_queued_s=120.0)
    chunk = (0.3 * np.sin(np.arange(320) * 0.05)).astype(np.float32)  # 20 ms at 16 kHz
    for _ in range(1000):  # 20 s, queued with no worker running
        assert session.push_pcm(chunk, 16000)
    while session.info()["commands_queued"]:
        session._drain(0)  # the worker's step, here, so nothing is shown meanwhile
    assert sum(len(u.pcm) for u in session.speech._queue) == 1000 * 320
    assert session.queued_s == pytest.approx(20.0)
    assert sum(len(u.marks) for u in session.speech._queue) == 1000  # each chunk's arrival is kept


def test_a_backlog_of_chunks_is_analysed_in_one_push_per_drain(avatar, monkeypatch):
    """A TTS that runs ahead queues thousands of 20 ms chunks: one drain analyses a run of them (0.5 s
    at most) as one block, so the next frame waits neither for a fixed cost per chunk nor for the
    analysis of the whole backlog."""
    session = live_session(avatar, max_queued_s=120.0)
    pushes = []
    factory = session.speech._factory

    def counting_factory(rate, fps):
        stream = factory(rate, fps)
        push = stream.push
        stream.push = lambda samples: pushes.append(len(samples)) or push(samples)
        return stream

    monkeypatch.setattr(session.speech, "_factory", counting_factory)
    chunk = (0.3 * np.sin(np.arange(320) * 0.05)).astype(np.float32)
    for _ in range(600):
        assert session.push_pcm(chunk, 16000)
    assert session.end_utterance()
    while session.info()["commands_queued"]:
        session._drain(0)
    assert sum(pushes) == 600 * 320 and max(pushes) == 25 * 320  # DRAIN_AUDIO_S = 0.5 s per drain
    assert len(pushes) == 24
    assert session._queued_in == 0.0 and session.queued_s == session.speech.queued_seconds() == 12.0
    utterance = session.speech._queue[0]
    assert [index for index, _ in utterance.marks] == [320 * k for k in range(600)]
    assert utterance.complete and utterance.ready() == len(utterance.features) == 300


def test_speech_in_commands_returns_to_exactly_zero_after_many_odd_chunks(avatar):
    """Seconds are reserved per chunk and released per chunk once applied: a float residue would
    leave queued_s above 0 for ever (and whoever waits for the avatar to finish, waiting)."""
    session = live_session(avatar, max_queued_s=120.0)
    rng = np.random.default_rng(3)
    for _ in range(700):
        assert session.push_pcm(np.full(int(rng.integers(1, 999)), 0.1, np.float32), 16000)
    assert session._queued_in > 0
    while session.info()["commands_queued"]:
        session._drain(0)
    assert session._queued_in == 0.0


def test_say_over_the_queue_limit_is_refused():
    backend = get_backend("classic")
    session = Session("u" * 16, prepare(demo_portrait()), "a", backend, live=True, sample_rate=16000,
                      settings=StreamSettings(max_queued_s=1.0), telemetry=Telemetry(), created_at=0.0)
    two_s = Speech(Audio(np.zeros(32000, np.float32), 16000))
    assert not session.send(Say(two_s, 2.0)) and session.queued_s == 0.0
    assert session.send(Say(two_s, 0.5)) and session.queued_s == pytest.approx(0.5)


# -- the clock -------------------------------------------------------------------------------------

def test_clock_counts_due_frames_and_waits():
    fake = FakeTime(10.0)
    clock = LiveClock(FPS, resync_s=1.0, now=fake)
    assert clock.due(0, 0) == 1  # frame 0 is due at the anchor
    assert clock.due(0, -2) == 3  # running two frames ahead of the clock
    assert clock.due(1, 0) == 0 and clock.wait_s(1, 0) == pytest.approx(0.04)
    fake.t += 0.1  # 2.5 frames later
    assert clock.due(1, 0) == 2 and clock.due(3, 0) == 0
    assert clock.wait_s(3, 0) == pytest.approx(0.02)
    assert clock.wait_s(0, 0) == 0.001  # overdue: never a zero or negative wait
    assert clock.behind_s(1) == pytest.approx(0.06)


def test_clock_re_anchors_after_a_stall_only():
    fake = FakeTime(0.0)
    clock = LiveClock(FPS, resync_s=1.0, now=fake)
    fake.t = 0.9  # 0.9 s late with nothing made: a hiccup, caught up by rendering
    assert not clock.resync(0) and clock.due(0, 0) == 23
    fake.t = 3.0
    assert clock.resync(25)  # 2 s behind after 25 frames: a stall
    assert clock.resyncs == 1 and clock.due(25, 0) == 1 and clock.behind_s(25) == pytest.approx(0.0)


def test_clock_refuses_a_bad_rate():
    with pytest.raises(ValueError, match="fps"):
        LiveClock(0, 1.0)


# -- live sessions paced by a fake clock -----------------------------------------------------------

def test_live_clock_re_syncs_after_a_stall_instead_of_bursting(avatar):
    fake = FakeTime()
    session = live_session(avatar, fake)
    session.start()
    try:
        assert within(10.0, lambda: session.produced >= 3)  # the first frames, then it waits
        made = session.produced
        assert made <= 3 + 1
        fake.t += 5.0  # the machine stalled for 5 s: 125 frames are "due"
        assert within(5.0, lambda: session.telemetry.snapshot()["counters"].get("live_resyncs") == 1)
        fake.t += 0.2  # then 5 frames of ordinary time
        assert within(5.0, lambda: session.produced >= made + 3 + 5)
        assert session.produced <= made + 3 + 5 + 1, "frames came in a burst instead of in real time"
        assert session.telemetry.snapshot()["counters"]["live_resyncs"] == 1
    finally:
        session.stop()
        session.join(5)
    assert session.state == "stopped"


def test_a_live_utterance_ends_by_itself_after_half_a_second_of_silence(avatar):
    fake = FakeTime()
    session = live_session(avatar, fake)
    session.start()
    try:
        assert within(10.0, lambda: session.produced >= 3)
        loud = (0.3 * np.sin(np.arange(6400) * 0.05)).astype(np.float32)  # 0.4 s at 16 kHz
        assert session.push_pcm(loud, 16000)
        assert within(5.0, lambda: session.speech.live_open)
        fake.t += 0.45  # 0.45 s without audio: the utterance waits for more
        assert within(5.0, lambda: session.produced >= 9)  # the worker looked at the clock at 0.45 s
        assert session.speech.live_open
        fake.t += 0.1  # 0.55 s: it ends by itself, and its last frames can be shown
        assert within(5.0, lambda: not session.speech.live_open)
        fake.t += 0.5
        assert within(5.0, lambda: session.queued_s == 0.0), "the whole utterance was shown"
    finally:
        session.stop()
        session.join(5)


# -- the raw output ----------------------------------------------------------------------------------

def test_a_raw_subscriber_gets_frames_and_pcm_with_their_timestamps(avatar):
    session = live_session(avatar)
    subscription = session.output.subscribe()
    assert session.output.readers == 1
    session.start()

    async def batches(n: int) -> list:
        out = []
        async with asyncio.timeout(30):
            while len(out) < n:
                out.append(await subscription.recv())
        return out

    try:
        got = asyncio.run(batches(4))
    finally:
        session.stop()
        session.join(5)
    frame, sample = got[0].first_frame, got[0].first_sample
    assert frame == 0 and sample == 0
    for batch in got:
        assert batch.frames.dtype == np.uint8 and batch.frames.shape[1:] == (*session.avatar.size[::-1], 3)
        assert batch.first_frame == frame and batch.first_sample == sample  # contiguous on both clocks
        n = len(batch.frames)
        assert len(batch.pcm) == sum(frame_samples(frame + i, 16000, FPS) for i in range(n))
        assert batch.pts_s == pytest.approx(batch.audio_pts_s, abs=1 / 16000)  # audio is the master clock
        frame, sample = frame + n, sample + len(batch.pcm)
    subscription.close()
    assert session.output.readers == 0

    async def rest() -> list:
        out = []
        async with asyncio.timeout(5):
            while (batch := await subscription.recv()) is not None:
                out.append(batch)
        return out

    left = asyncio.run(rest())  # what was made before the stop, then the end
    assert len(left) <= 8 and all(b.first_frame >= frame for b in left)
