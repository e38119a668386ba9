"""The WebRTC tracks' clocks, without a network: every packet's pts and time_base, the RTP
timestamps aiortc makes of them, and no drift between audio and video over 10 simulated minutes.
The playout clock runs on an injected time source, so nothing here waits for real time."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import numpy as np
import pytest
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from facecast.transports.webrtc.encoder import OPUS_FRAME, OPUS_RATE, AudioEncoder, VideoEncoder
from facecast.transports.webrtc.playout import Playout
from facecast.transports.webrtc.tracks import (SENDER_NTP, SENDER_RTP, AudioPacketTrack, PacketQueue,
                                                VideoPacketTrack, restamp)

FPS = 25
TEN_MINUTES = 600 * FPS  # frames
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102,
                             parameters={"packetization-mode": "1", "level-asymmetry-allowed": "1",
                                         "profile-level-id": "42e01f"})
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def frames(count: int, size=(32, 32), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (count, size[1], size[0], 3), np.uint8)


@pytest.mark.parametrize("codec,rtp", [("h264", H264), ("vp8", VP8)])
def test_video_packets_carry_their_frame_number_and_keyframes_come_on_time_and_on_request(codec, rtp):
    encoder = VideoEncoder(codec, (32, 32), FPS, keyint=10)
    packer = get_encoder(rtp)
    out = encoder.encode(frames(25), 0)
    assert [f.index for f in out] == list(range(25))
    assert all(f.packet.pts == f.index and f.packet.time_base == Fraction(1, FPS) for f in out)
    assert [f.index for f in out if f.keyframe] == [0, 10, 20]
    encoder.request_keyframe()
    later = encoder.encode(frames(3, seed=1), 25)
    assert [(f.index, f.keyframe) for f in later] == [(25, True), (26, False), (27, False)]
    for f in out + later:  # aiortc's RTP timestamp: 90 kHz ticks of the frame's time
        payloads, timestamp = packer.pack(f.packet)
        assert payloads and timestamp == f.index * 90000 // FPS


@pytest.mark.parametrize("rate", [48000, 22050, 16000])
def test_audio_stays_on_the_video_clock_for_ten_minutes(rate):
    """Batches as a session writes them (rate / fps samples per frame): after 10 minutes the Opus
    packets' 48 kHz positions still match the frames' times, to the sample."""
    encoder = AudioEncoder(rate)
    packer = get_encoder(OPUS)
    tone = (0.2 * np.sin(np.arange(rate) * 2 * np.pi * 220 / rate)).astype(np.float32)
    per_batch = 3  # frames per batch, as a live session catching up
    packets = []
    written = 0
    for first in range(0, TEN_MINUTES, per_batch):
        end = round((first + per_batch) * rate / FPS)
        pcm = tone[np.arange(written, end) % rate]
        packets += encoder.encode(pcm, written)
        written = end
    samples = [p.sample for p in packets]
    assert samples == list(range(samples[0], samples[0] + OPUS_FRAME * len(samples), OPUS_FRAME)), "no gap, no overlap"
    assert samples[0] == -312, "the first packet starts Opus's delay before t = 0"
    produced_s = (samples[-1] + OPUS_FRAME) / OPUS_RATE
    assert abs(produced_s - TEN_MINUTES / FPS) < 0.05, "audio ends where the video ends (no drift)"
    for p in packets[:: len(packets) // 50]:
        payloads, timestamp = packer.pack(p.packet)
        assert len(payloads) == 1 and timestamp == p.sample


def test_audio_restarts_at_a_jump_in_the_stream():
    encoder = AudioEncoder(16000)
    first = encoder.encode(np.zeros(3200, np.float32), 0)
    later = encoder.encode(np.zeros(3200, np.float32), 16000)  # one second nobody watched
    assert first[0].sample == -312
    assert [p.sample for p in later] == [OPUS_RATE - 312 + 960 * k for k in range(len(later))]


def test_playout_sends_each_time_at_anchor_plus_stream_time_without_drift():
    now = FakeTime()
    playout = Playout(delay=0.03, resync_s=0.3, max_ahead_s=0.5, now=now)
    assert not playout.started
    playout.start(2.0)  # the first keyframe is frame 50
    assert playout.wall(2.0) == pytest.approx(now.t + 0.03)
    rng = np.random.default_rng(1)
    start = now.t
    for k in range(51, 51 + TEN_MINUTES):  # each frame arrives 20 ms +- 15 ms before its time
        now.t = start + (k - 50) / FPS - 0.02 + rng.uniform(-0.015, 0.015)
        playout.arrived(k / FPS)
        assert playout.wait_s(k / FPS) == pytest.approx(playout.wall(k / FPS) - now.t)
    assert playout.resyncs == 0
    assert playout.wall(TEN_MINUTES / FPS + 2.0) - playout.wall(2.0) == pytest.approx(TEN_MINUTES / FPS)


def test_playout_re_anchors_after_a_stall_and_after_a_backlog():
    now = FakeTime()
    playout = Playout(delay=0.03, resync_s=0.3, max_ahead_s=0.5, now=now)
    playout.start(0.0)
    now.t += 1.0
    playout.arrived(0.5)  # half a second late: the stream stalled
    assert playout.resyncs == 1 and playout.wall(0.5) == pytest.approx(now.t + 0.03)
    playout.arrived(0.5 + 2.0)  # two seconds early: a burst the peer would hold
    assert playout.resyncs == 2 and playout.wall(2.5) == pytest.approx(now.t + 0.03)
    assert playout.ahead_s() == pytest.approx(0.0, abs=0.04)


def test_clip_playout_has_no_backlog_limit():
    now = FakeTime()
    playout = Playout(delay=0.1, resync_s=0.3, max_ahead_s=None, now=now)
    playout.start(0.0)
    playout.arrived(10.0)  # a clip's producer runs ahead; its back-pressure bounds it instead
    assert playout.resyncs == 0 and playout.ahead_s() == pytest.approx(10.0 + 0.1)  # frame 0 is due 0.1 s from now


def test_tracks_return_the_sessions_packets_in_order_with_their_timestamps():
    """Both tracks over 10 simulated minutes: the clock says every packet is due (the fake time is
    past the end), so recv() never sleeps; pts, time_base and order are checked for each one."""

    async def run():
        now = FakeTime(0.0)
        playout = Playout(delay=0.0, resync_s=0.3, max_ahead_s=None, now=now)
        playout.start(0.0)
        now.t = 10_000.0  # everything is due
        video_queue, audio_queue = PacketQueue(), PacketQueue()
        pulls = []
        video = VideoPacketTrack(video_queue, playout, FPS, on_first_pull=lambda: pulls.append(1),
                                 on_sent=lambda f: None)
        audio = AudioPacketTrack(audio_queue, playout)
        encoder, sound = VideoEncoder("h264", (16, 16), FPS, keyint=50), AudioEncoder(OPUS_RATE)
        tiny = frames(1, (16, 16))
        for first in range(0, TEN_MINUTES, 5):
            for f in encoder.encode(np.repeat(tiny, 5, axis=0), first):
                video_queue.put(f)
            for a in sound.encode(np.zeros(5 * 1920, np.float32), first * 1920):
                audio_queue.put(a)
        video_queue.finish()
        audio_queue.finish()
        got_video, got_audio = [], []
        while True:
            try:
                got_video.append(await video.recv())
            except Exception:  # MediaStreamError: drained
                break
        while True:
            try:
                got_audio.append(await audio.recv())
            except Exception:
                break
        return pulls, got_video, got_audio

    pulls, got_video, got_audio = asyncio.run(run())
    assert pulls == [1]
    assert [p.pts for p in got_video] == list(range(TEN_MINUTES))
    assert all(p.time_base == Fraction(1, FPS) for p in got_video)
    assert [p.pts for p in got_audio] == [-312 + 960 * k for k in range(len(got_audio))]
    assert all(p.time_base == Fraction(1, OPUS_RATE) for p in got_audio)
    assert abs(len(got_audio) * 0.02 - TEN_MINUTES / FPS) <= 0.02


def test_sender_reports_carry_the_playout_time_of_a_late_packet():
    """A packet that left 200 ms after it was due is reported at its due time: the sender report's
    NTP time moves back by those 200 ms, so the other track's mapping still agrees with it."""
    from aiortc import clock

    now = FakeTime()
    playout = Playout(delay=0.0, resync_s=0.3, max_ahead_s=None, now=now)
    playout.start(0.0)

    class Sender:  # the two fields aiortc's RTCRtpSender sets after each packet it sends
        pass

    sender = Sender()
    setattr(sender, SENDER_RTP, 123456)
    now.t += 1.2  # the packet of stream time 1.0 s left 200 ms late
    setattr(sender, SENDER_NTP, clock.current_ntp_time())
    before = clock.current_ntp_time()
    restamp(sender, playout, 1.0)
    after = clock.current_ntp_time()
    late = 0.2 * (1 << 32)
    assert before - late - 2 ** 26 <= getattr(sender, SENDER_NTP) <= after - late + 2 ** 26  # +- 16 ms


def test_aiortc_still_keeps_the_report_fields_this_relies_on():
    import inspect

    from aiortc.rtcrtpsender import RTCRtpSender

    source = inspect.getsource(RTCRtpSender)
    for field in (SENDER_NTP, SENDER_RTP):
        assert f"self.{field.split('RTCRtpSender')[1]}" in source, f"aiortc no longer has {field}"
