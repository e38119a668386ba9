"""Streaming generation without HTTP: the segment fan-out, the speech queue, sessions, the manager."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from support.waiting import within

from facecast.audio.pcm import Audio
from facecast.audio.resampling import resample
from facecast.avatar.prepare import prepare
from facecast.demo import demo_portrait
from facecast.engine import Speech, speech_from_text
from facecast.errors import Unavailable
from facecast.lipsync.base import get_backend
from facecast.server.session_manager import SessionManager
from facecast.server.settings import ServerSettings
from facecast.streaming.session import Session, StreamSettings
from facecast.streaming.speech import SpeechQueue, frame_samples
from facecast.streaming.telemetry import Telemetry, percentiles
from facecast.transports.fmp4.encoder import Fmp4Segment
from facecast.transports.fmp4.fanout import SegmentFanout, StreamEnded
from facecast.transports.fmp4.output import attach_fmp4

FPS = 25


def segment(key: bool) -> Fmp4Segment:
    return Fmp4Segment(0, key, 0, 1, b"x" * 100)


def fill(log: SegmentFanout, n: int, keyint: int = 5) -> None:
    for i in range(n):
        log.append(segment(i % keyint == 0))


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


# -- the segment fan-out ----------------------------------------------------------------------------

def test_first_reader_from_start_later_ones_from_the_latest_keyframe(loop):
    log = SegmentFanout(max_lag=50)
    log.set_init(b"init")
    fill(log, 12)
    first, second = log.attach(), log.attach()
    assert log.take(first).seq == 1
    assert log.take(second).seq == 11 and log.take(second).keyframe is False


def test_a_reconnect_continues_instead_of_restarting(loop):
    log = SegmentFanout(max_lag=50)
    fill(log, 8)
    reader = log.attach()
    while log.take(reader) is not None:
        pass
    log.detach(reader)
    fill(log, 4)
    again = log.attach()
    assert log.take(again).seq == 9  # the latest keyframe (seqs 1, 6, 9), not seq 1


def test_a_stalled_reader_never_grows_memory(loop):
    log = SegmentFanout(max_lag=20)
    slow = log.attach()
    fill(log, 1000)
    depth = log.depth()
    assert depth["segments_kept"] <= 20 + 5 and depth["bytes_kept"] <= 25 * 100
    jumped = log.take(slow)
    assert jumped.keyframe and jumped.seq >= 1000 - 20 and log.skipped > 900


def test_unread_live_stream_keeps_only_since_its_keyframe(loop):
    log = SegmentFanout(max_lag=100, from_start=False)
    fill(log, 60, keyint=25)
    assert log.depth()["segments_kept"] == 10
    assert log.take(log.attach()).seq == 51, "live readers start at the latest keyframe"


def test_producer_waits_for_readers(loop):
    log = SegmentFanout(max_lag=4)
    fill(log, 4)
    stop = threading.Event()
    done = threading.Event()
    threading.Thread(target=lambda: (log.wait_for_room(stop, 0.01), done.set()), daemon=True).start()
    assert not done.wait(0.2), "ran ahead of the readers"
    reader = log.attach()
    log.take(reader)
    assert done.wait(2.0)


def test_end_and_failure_reach_readers(loop):
    log = SegmentFanout(max_lag=10)
    fill(log, 1)
    reader = log.attach()
    log.close()
    assert log.take(reader).seq == 1
    with pytest.raises(StreamEnded) as ended:
        log.take(reader)
    assert ended.value.error is None
    broken = SegmentFanout(max_lag=10)
    reader = broken.attach()
    broken.close("generation failed: boom")
    with pytest.raises(StreamEnded, match="boom"):
        broken.take(reader)


def test_readers_wake_when_segments_arrive(loop):
    log = SegmentFanout(max_lag=10)

    async def read_one():
        reader = log.attach()
        while (seg := log.take(reader)) is None:
            await log.wait(reader)
        return seg.seq

    threading.Timer(0.1, lambda: fill(log, 1)).start()
    assert loop.run_until_complete(asyncio.wait_for(read_one(), 5)) == 1


# -- the speech queue ---------------------------------------------------------------------------

def columns(n: int) -> np.ndarray:
    return np.tile(np.array([[0.5, 0.0, 0.0]], np.float32), (n, 1))


def test_clip_audio_stays_locked_to_frames():
    rate, frames = 22050, 37
    queue = SpeechQueue(rate, FPS, 3, None)
    span = frames * rate // FPS
    queue.add_clip(columns(frames), np.ones(span, np.float32))
    produced, fed = 0, 0
    while queue.ready():
        taken = queue.take(produced, 4, lead=3072)
        produced += len(taken.features)
        fed += len(taken.pcm)
        assert fed <= sum(frame_samples(f, rate, FPS) for f in range(produced)) + 3072
    assert produced == frames and fed == sum(frame_samples(f, rate, FPS) for f in range(frames))


def test_live_pcm_becomes_frames_with_its_samples():
    backend = get_backend("classic")
    queue = SpeechQueue(48000, FPS, 3, backend.stream_features)
    speech = speech_from_text("Live speech, one chunk at a time.")
    pcm, rate = speech.audio.samples, speech.audio.sample_rate
    produced, arrivals = 0, 0
    for i in range(0, len(pcm), rate // 50):
        queue.push(pcm[i:i + rate // 50], rate, time.monotonic())
        while queue.ready():
            taken = queue.take(produced, 3)
            assert len(taken.pcm) == sum(frame_samples(produced + k, 48000, FPS) for k in range(len(taken.features)))
            produced += len(taken.features)
            arrivals += len(taken.arrivals)
    assert queue.live_open
    queue.end()
    while queue.ready():
        produced += len(queue.take(produced, 3).features)
    assert abs(produced - speech.audio.frame_count(FPS)) <= 1
    assert arrivals > 0.9 * (len(pcm) // (rate // 50))


def test_live_utterances_share_one_feature_stream_that_knows_the_voice():
    """Each live utterance used to get a fresh feature stream, so one that starts on its loudest
    sound (a client that sends only speech, a TTS chunk) showed a closed mouth for its first frames
    while the stream learnt the voice again. The queue keeps one stream: the second utterance opens
    the mouth on its first frame; an interrupt (clear) keeps it too."""
    backend = get_backend("classic")
    made = []

    def factory(rate, fps):
        made.append(backend.stream_features(rate, fps))
        return made[-1]

    queue = SpeechQueue(16000, FPS, 3, factory)
    speech = speech_from_text("Ah, all of that, at once.")
    x = resample(speech.audio.samples, speech.audio.sample_rate, 16000)
    x = x[int(np.argmax(np.abs(x) > 0.3 * np.abs(x).max())):]  # starts on a loud sound

    def say(end: bool = True) -> np.ndarray:
        for i in range(0, len(x), 320):
            queue.push(x[i:i + 320], 16000, time.monotonic())
        if end:
            queue.end()
        rows, produced = [], 0
        while queue.ready():
            taken = queue.take(produced, 3)
            rows.append(taken.features)
            produced += len(taken.features)
        return np.concatenate(rows)

    say()
    assert say()[0, 0] > 0.3
    say(end=False)
    queue.clear()
    assert say()[0, 0] > 0.3 and len(made) == 1


def test_clear_drops_everything():
    backend = get_backend("classic")
    queue = SpeechQueue(16000, FPS, 3, backend.stream_features)
    queue.add_clip(columns(10), np.zeros(6400, np.float32))
    queue.push(np.zeros(8000, np.float32), 16000, 0.0)
    queue.clear()
    assert queue.ready() == 0 and not queue.live_open and queue.queued_seconds() == 0


# -- sessions -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def avatar():
    return prepare(demo_portrait())


class RecordingBackend:
    """The classic backend, remembering the features of every frame it renders."""

    def __init__(self, fail: bool = False):
        self.inner, self.fail, self.rows = get_backend("classic"), fail, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def render(self, avatar, features, indices, *, idle=None):
        if self.fail:
            raise RuntimeError("renderer exploded")
        self.rows.extend(np.asarray(features).tolist())
        return self.inner.render(avatar, features, indices, idle=idle)


def drain(session: Session, seconds: float = 10.0) -> list[Fmp4Segment]:
    """Read a session's fMP4 stream in a private event loop until it ends (StreamEnded if it failed)."""
    fanout = session.output.sink("fmp4").segments

    async def read():
        reader = fanout.attach()
        out = []
        try:
            while True:
                seg = fanout.take(reader)
                if seg is None:
                    await asyncio.wait_for(fanout.wait(reader), seconds)
                else:
                    out.append(seg)
        except StreamEnded as end:
            if end.error:
                raise
            return out

    return asyncio.run(read())


def make_session(avatar, backend, live: bool, rate: int = 22050, clock=None, **settings) -> Session:
    """A session with its fMP4 output attached (rate: an AAC rate, Hz)."""
    session = Session("s" * 16, avatar, "a", backend, live=live, sample_rate=rate, settings=StreamSettings(**settings),
                      telemetry=Telemetry(), created_at=time.monotonic(), clock=clock)
    attach_fmp4(session)
    return session


def test_clip_session_makes_every_frame(avatar):
    speech = speech_from_text("Exactly as many frames as the audio.")
    session = make_session(avatar, get_backend("classic"), live=False)
    session.start(speech)
    segments = drain(session)
    assert sum(s.frames for s in segments) == speech.audio.frame_count(FPS)
    assert session.state == "finished" and session.output.sink("fmp4").segments.init.startswith(b"\x00\x00\x00")
    assert segments[0].frames == 2, "the first batch is small, for a short time to first frame"


def test_live_session_idles_in_real_time_and_interrupt_closes_the_mouth(avatar):
    backend = RecordingBackend()
    session = make_session(avatar, backend, live=True, rate=48000)
    session.start()
    assert within(3.0, lambda: session.produced >= 10), "the live session idles from the start"
    loud = Speech(Audio((0.3 * np.sin(np.arange(48000) * 0.05)).astype(np.float32), 48000))
    session.say(speech_from_text("Open wide and say aah, for a long long time."))
    assert within(3.0, lambda: any(row[0] > 0.05 for row in backend.rows)), "speech opens the mouth"
    opened = len(backend.rows)
    assert within(3.0, lambda: len(backend.rows) >= opened + 5), "speech goes on"
    spoken = len(backend.rows)
    session.interrupt()
    assert within(3.0, lambda: len(backend.rows) >= spoken + 8), "frames go on after the interrupt"
    after = backend.rows[spoken:]
    session.say(loud)
    session.stop()
    session.join(5)
    assert session.state == "stopped"
    first_closed = next(i for i, row in enumerate(after) if not any(row))
    assert first_closed <= 2 + 3 and all(not any(row) for row in after[first_closed:])
    elapsed = time.monotonic() - session.created_at
    assert abs(session.produced - elapsed * FPS) < 8, "live sessions run in real time"


def test_failed_generation_is_reported_not_raised(avatar):
    session = make_session(avatar, RecordingBackend(fail=True), live=False)
    session.start(speech_from_text("This will fail."))
    session.join(10)
    assert session.state == "failed" and "renderer exploded" in session.error
    with pytest.raises(StreamEnded, match="renderer exploded"):
        drain(session)
    assert session.telemetry.snapshot()["counters"]["session_errors"] == 1


def test_pushes_beyond_the_queue_limit_are_held_back(avatar):
    session = make_session(avatar, get_backend("classic"), live=True, rate=16000, max_queued_s=1.0)
    assert session.push_pcm(np.zeros(8000, np.float32), 16000)
    assert not session.push_pcm(np.zeros(16000, np.float32), 16000)


def test_say_beyond_the_queue_limit_is_refused_and_counted_until_spoken(avatar):
    session = make_session(avatar, get_backend("classic"), live=True, rate=16000, max_queued_s=2.0)
    one_s = Speech(Audio(np.zeros(16000, np.float32), 16000))
    assert session.say(one_s) and session.queued_s == pytest.approx(1.0)
    assert not session.say(Speech(Audio(np.zeros(24000, np.float32), 16000))), "1 + 1.5 s is over 2 s"
    assert session.push_pcm(np.zeros(8000, np.float32), 16000), "0.5 s more still fits"
    assert not session.say(one_s) and session.queued_s == pytest.approx(1.5)


def test_manager_limits_sessions(avatar, tmp_path):
    manager = SessionManager(ServerSettings(max_sessions=1, data_dir=tmp_path), Telemetry())
    first = manager.create(avatar, "a", live=True, sample_rate=48000, first=None, created_at=time.monotonic())
    with pytest.raises(Unavailable, match="limit is 1"):
        manager.create(avatar, "a", live=True, sample_rate=48000, first=None, created_at=time.monotonic())
    manager.remove(first.id).join(5)
    assert not first.alive


def test_percentiles():
    assert percentiles([])["count"] == 0
    stats = percentiles(list(range(1, 101)))
    assert stats["count"] == 100 and 50 <= stats["p50"] <= 51 and stats["p95"] >= 95 and stats["max"] == 100
