"""FacecastVideoService with pipecat's own test utility (pipecat.tests.utils.run_test): frames in,
frames out, their order and timing; then in front of a real pipecat output transport (PacedOutput:
BaseOutputTransport with a device that plays audio in real time), as a voice agent runs it.

Everything runs in real time on the built-in astronaut; scripts wait for conditions (generous
limits for a loaded 2-core machine), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("pipecat")

from pipecat.frames.frames import (BotStartedSpeakingFrame, BotStoppedSpeakingFrame, InterruptionFrame,  # noqa: E402
                                   OutputImageRawFrame, TextFrame, TTSAudioRawFrame, TTSStartedFrame,
                                   TTSStoppedFrame, UserStartedSpeakingFrame)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection  # noqa: E402
from pipecat.tests.utils import run_test  # noqa: E402
from probe import mouth_openings  # noqa: E402
from support.pipecat_media import (PacedOutput, PeerlessConnection, Pushed, mark, pcm_of, script,  # noqa: E402
                                   tts_frames, wait)

from facecast.agents.avatar import AvatarOptions, load  # noqa: E402
from facecast.agents.pipecat import (AUDIO_KEY, EPOCH_KEY, FacecastVideoService,  # noqa: E402
                                     _webrtc_video_queue, drop_unsent_video)
from facecast.audio.tts import synthesize  # noqa: E402
from facecast.errors import InvalidArgument  # noqa: E402

OPTIONS = AvatarOptions(size=256, fps=25, sample_rate=24_000)
SPF = 960  # samples per video frame: 24 kHz / 25 fps
WAIT_S = 30.0  # s a condition may take at most
START_S = 60.0  # s the pipeline may take to start (the avatar is prepared on first use)
HOLD_S = 30.0  # s a held TTSStoppedFrame may wait for a starved avatar (the fallback is not under test)
SENTENCE = "Hello! I am the face of your voice agent, and I can talk for as long as you like."


def run(coro, timeout: float = 240.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """A spoken sentence, (n,) float32 at espeak's 22050 Hz (the service resamples it to 24 kHz)."""
    audio = synthesize(SENTENCE).audio
    return audio.samples, audio.sample_rate


@pytest.fixture(scope="module")
def size() -> tuple[int, int]:
    avatar, _ = load(OPTIONS)
    return avatar.size


def images_bgr(frames: list[OutputImageRawFrame]) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR of RGB images."""
    w, h = frames[0].size
    return np.stack([np.frombuffer(f.image, np.uint8).reshape(h, w, 3)[:, :, ::-1] for f in frames])


def test_options_are_checked():
    with pytest.raises(InvalidArgument, match="stop_timeout_s"):
        FacecastVideoService(OPTIONS, stop_timeout_s=0)


def test_speech_in_images_and_the_avatars_own_audio_out_then_the_stop(speech, size):
    samples, rate = speech
    service = FacecastVideoService(OPTIONS, stop_timeout_s=HOLD_S)
    out = Pushed(service)
    t: dict[str, float] = {}
    frames = script(wait(WAIT_S, lambda: out.count(OutputImageRawFrame) >= 10),
                    mark(t, "speak"), TTSStartedFrame(), TextFrame("in order"), tts_frames(samples, rate),
                    TTSStoppedFrame(), mark(t, "sent"),
                    wait(WAIT_S, lambda: out.count(TTSStoppedFrame)),
                    wait(WAIT_S, lambda: out.count(TTSStoppedFrame)
                         and len(out.of(OutputImageRawFrame, out.times(TTSStoppedFrame)[0])) >= 10))
    run(run_test(service, frames_to_send=frames, observers=[out], start_timeout=START_S))

    kinds = [type(f) for _, f in out.items]
    assert kinds.count(TTSStoppedFrame) == 1 and kinds.count(TTSStartedFrame) == 1
    started, stopped = kinds.index(TTSStartedFrame), kinds.index(TTSStoppedFrame)
    assert kinds.index(TextFrame) > started, "other frames pass through in order"
    audio = out.of(TTSAudioRawFrame)
    assert audio and all(f.sample_rate == 24_000 and f.num_channels == 1 and f.num_frames == SPF for f in audio)
    first_audio = kinds.index(TTSAudioRawFrame)
    last_audio = len(kinds) - 1 - kinds[::-1].index(TTSAudioRawFrame)
    assert started < first_audio and last_audio < stopped, \
        f"the stop is held until the last audio is out: {[k.__name__ for k in kinds[started:stopped + 3]]}"
    assert TTSAudioRawFrame not in kinds[stopped:], "idle again: images only"
    assert all(kinds[i - 1] is OutputImageRawFrame for i, k in enumerate(kinds) if k is TTSAudioRawFrame), \
        "each frame: its image, then its audio"
    # the speech itself, resampled to 24 kHz, padded to whole frames (the TTS's audio is not passed on)
    expected = len(samples) * 24_000 / rate
    assert abs(len(audio) * SPF - expected) <= 2 * SPF
    assert np.max(np.abs(pcm_of(audio))) > 0.1
    images = out.of(OutputImageRawFrame)
    w, h = size
    assert all(f.size == (w, h) and f.format == "RGB" and len(f.image) == w * h * 3 and f.sync_with_audio
               for f in images)
    # real time: 25 images a second, the stop as the speech ends (not as the TTS finished sending)
    times = out.times(OutputImageRawFrame)
    fps = (len(times) - 1) / (times[-1] - times[0])
    catch_up = 1.2 * 25  # frames: after a stall the avatar catches up on at most ~1 s (then it re-syncs)
    assert len(times) - 1 <= 25 * (times[-1] - times[0]) + catch_up, f"{fps:.1f} images/s: faster than real time"
    assert fps >= 8, f"{fps:.1f} images/s: far behind real time (a starved machine: the avatar's clock re-syncs)"
    audio_times = out.times(TTSAudioRawFrame)
    assert audio_times[-1] - audio_times[0] >= (len(audio) - 1 - catch_up) / 25, "speech frames go out in real time"
    held = out.times(TTSStoppedFrame)[0] - t["sent"]
    assert held >= 0.7 * expected / 24_000, f"TTSStoppedFrame held {held:.2f} s only"
    assert out.times(TTSStoppedFrame)[0] - audio_times[-1] < 0.5


def _openings(frames: list[OutputImageRawFrame]) -> np.ndarray:
    values = mouth_openings(images_bgr(frames))
    assert not np.isnan(values).any(), "the face is found in every image"
    return values


def test_interruption_drops_queued_output_at_once_and_the_mouth_closes(speech):
    samples, rate = speech
    service = FacecastVideoService(OPTIONS)
    out = Pushed(service)
    t: dict[str, float] = {}
    frames = script(wait(WAIT_S, lambda: out.count(OutputImageRawFrame) >= 10),
                    TTSStartedFrame(), tts_frames(samples, rate),
                    wait(WAIT_S, lambda: out.count(TTSAudioRawFrame) >= 40),
                    mark(t, "interrupt"), InterruptionFrame(),
                    wait(WAIT_S, lambda: len(out.of(OutputImageRawFrame, t["interrupt"])) >= 25))
    run(run_test(service, frames_to_send=frames, observers=[out], start_timeout=START_S))

    interrupt = t["interrupt"]
    assert out.count(InterruptionFrame) == 1
    late = out.of(TTSAudioRawFrame, interrupt)
    assert len(late) <= 3, f"{len(late)} speech frames after the interrupt (one batch in flight at most)"
    assert out.count(TTSAudioRawFrame) * SPF < 0.8 * len(samples) * 24_000 / rate, "the queued speech was dropped"
    after = out.times(OutputImageRawFrame, interrupt)
    assert after[0] - interrupt < 1.0, "images go on at once (within a frame or two; more on a starved machine)"
    idle = _openings(out.of(OutputImageRawFrame)[:5])
    spoken = _openings(out.of(OutputImageRawFrame, interrupt - 1.0, interrupt))
    closed = _openings(out.of(OutputImageRawFrame, interrupt + 0.2)[:5])
    assert spoken.max() > idle.mean() + 0.05, (idle, spoken)
    assert closed.max() < idle.mean() + 0.3 * (spoken.max() - idle.mean()), (idle, spoken, closed)


def test_user_started_speaking_interrupts_and_releases_the_held_stop_then_speech_plays_again(speech):
    samples, rate = speech
    second = samples[: rate]  # 1 s
    service = FacecastVideoService(OPTIONS, stop_timeout_s=HOLD_S)
    out = Pushed(service)
    t: dict[str, float] = {}
    frames = script(wait(WAIT_S, lambda: out.count(OutputImageRawFrame) >= 5),
                    TTSStartedFrame(), tts_frames(samples, rate), TTSStoppedFrame(),
                    wait(WAIT_S, lambda: out.count(TTSAudioRawFrame) >= 25),
                    mark(t, "barge-in"), UserStartedSpeakingFrame(),
                    wait(WAIT_S, lambda: out.count(TTSStoppedFrame) == 1),
                    mark(t, "again"), TTSStartedFrame(), tts_frames(second, rate), TTSStoppedFrame(),
                    wait(WAIT_S, lambda: out.count(TTSStoppedFrame) == 2))
    run(run_test(service, frames_to_send=frames, observers=[out], start_timeout=START_S))

    barge_in = t["barge-in"]
    assert out.count(UserStartedSpeakingFrame) == 1
    assert len(out.of(TTSAudioRawFrame, barge_in, t["again"])) <= 3
    assert out.times(TTSStoppedFrame)[0] - barge_in < 1.0, "the held stop goes once the avatar idles"
    replies = out.of(TTSAudioRawFrame, t["again"])
    assert abs(len(replies) * SPF - len(second) * 24_000 / rate) <= 2 * SPF, "the next utterance plays in full"


def test_at_the_output_transport_idle_images_keep_the_video_alive_and_bot_speaking_follows_the_speech(
        speech, size):
    samples, rate = speech
    clip = samples[: int(1.5 * rate)]
    service = FacecastVideoService(OPTIONS, stop_timeout_s=HOLD_S)
    transport = PacedOutput(size, OPTIONS.fps)
    up = Pushed(transport, FrameDirection.UPSTREAM)
    t: dict[str, float] = {}

    def drawn(since: float = 0.0) -> int:
        return sum(1 for when, _ in transport.video if when >= since)

    frames = script(wait(WAIT_S, lambda: drawn() >= 25), mark(t, "first"),
                    TTSStartedFrame(), tts_frames(clip, rate), TTSStoppedFrame(),
                    wait(WAIT_S, lambda: up.count(BotStoppedSpeakingFrame) == 1), mark(t, "idle"),
                    wait(WAIT_S, lambda: drawn(t["idle"]) >= 25), mark(t, "second"),
                    TTSStartedFrame(), tts_frames(clip, rate), TTSStoppedFrame(),
                    wait(WAIT_S, lambda: up.count(BotStoppedSpeakingFrame) == 2),
                    wait(WAIT_S, lambda: up.count(BotStoppedSpeakingFrame) == 2
                         and drawn(up.times(BotStoppedSpeakingFrame)[1]) >= 10))
    run(run_test(Pipeline([service, transport]), frames_to_send=frames, observers=[up], start_timeout=START_S))

    assert up.count(BotStartedSpeakingFrame) == 2 and up.count(BotStoppedSpeakingFrame) == 2
    audio_starts = [start for start, _ in transport.audio]
    assert not [s for s in audio_starts if s < t["first"]], "no audio while idle before speaking"
    assert not [s for s in audio_starts if t["idle"] <= s < t["second"]], "no audio between utterances"
    gap = [when for when, _ in transport.video if t["idle"] <= when < t["second"]]
    assert len(gap) >= 25 and max(np.diff(gap)) < 1.0, "idle images keep the video alive (drawn at the " \
        "transport's framerate on a quiet machine; pipecat's video task slows down on a starved one)"
    # bot speaking ends with the speech's audio (the held TTSStoppedFrame), not 3 s later
    first_utterance_end = max(start + n / 24_000 for start, n in transport.audio if start < t["idle"])
    stopped = up.times(BotStoppedSpeakingFrame)[0]
    assert -0.05 < stopped - first_utterance_end < 0.5, stopped - first_utterance_end
    # each speech image is drawn as the audio of its frame plays
    offsets = []
    seen = set()
    for when, image in transport.video:
        if AUDIO_KEY in image.metadata and id(image) not in seen:
            seen.add(id(image))
            played = transport.played_at(image.metadata[AUDIO_KEY])
            if played is not None:
                offsets.append(when - played)
    assert len(offsets) >= 40
    # never before its audio; typically within a frame (the transport draws at its framerate), later
    # only when the transport's own video task is starved of CPU
    assert np.percentile(offsets, 5) > -0.05 and np.median(offsets) < 0.25, np.percentile(offsets, [5, 50, 95])


def _webrtc_output(size: tuple[int, int]):
    """pipecat's SmallWebRTC output transport on a PeerlessConnection (its video track never read)."""
    pytest.importorskip("aiortc")
    from pipecat.transports.base_transport import TransportParams
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

    connection = PeerlessConnection()
    transport = SmallWebRTCTransport(connection, TransportParams(
        audio_out_enabled=True, audio_out_sample_rate=24_000, video_out_enabled=True, video_out_is_live=False,
        video_out_width=size[0], video_out_height=size[1], video_out_framerate=OPTIONS.fps,
        audio_out_end_silence_secs=0))
    return connection, transport.output()


def test_drop_unsent_video_empties_smallwebrtcs_video_track():
    """The one private path (pipecat 1.14 has no public one): fails if pipecat renames it."""
    connection, output = _webrtc_output((16, 16))
    assert _webrtc_video_queue(output) is None, "no track before the peer connects"
    assert drop_unsent_video(PacedOutput((16, 16), 25)) == 0, "another transport: nothing to drop"
    dropped: list[int] = []

    def drop():
        dropped.append(drop_unsent_video(output))
        return ()

    image = OutputImageRawFrame(bytes(16 * 16 * 3), (16, 16), "RGB")
    frames = script(image, wait(WAIT_S, lambda: len(connection.video_writes) >= 5), drop)
    run(run_test(output, frames_to_send=frames, start_timeout=START_S))
    assert connection.video_track is not None and all(drawn is image for _, drawn in connection.video_writes)
    assert dropped and dropped[0] >= 5, (dropped, len(connection.video_writes))


def test_an_interruption_drops_the_images_a_webrtc_track_has_not_sent_and_the_next_show_a_closed_mouth(
        speech, size):
    """In front of pipecat's SmallWebRTC output whose video track is not read (an encoder that fell
    behind: drawn images pile up in the track), an interruption drops every image drawn before it,
    idle and speech alike; what the track sends next starts with the first image made after it."""
    samples, rate = speech
    connection, output = _webrtc_output(size)
    service = FacecastVideoService(OPTIONS)
    out = Pushed(service)
    t: dict[str, float] = {}
    queued: dict[str, int] = {}
    unsent: list = []

    def speech_drawn() -> int:
        return sum(AUDIO_KEY in image.metadata for _, image in connection.video_writes)

    def note_queued():
        queue = _webrtc_video_queue(output)
        queued["interrupt"] = queue.qsize() if queue is not None else 0
        t["interrupt"] = time.monotonic()
        return ()

    def made_after() -> list[OutputImageRawFrame]:
        """Images the service made after the interruption (by its own count: an image pushed
        between note_queued and the interruption reaching the service is older)."""
        return [image for image in out.of(OutputImageRawFrame, t["interrupt"]) if image.metadata[EPOCH_KEY] >= 1]

    def fresh_drawn(n: int) -> bool:
        """n images drawn since the first one made after the interruption."""
        fresh = made_after()[:1]
        drawn = [image for _, image in connection.video_writes]
        since = next((i for i, image in enumerate(drawn) if fresh and image is fresh[0]), len(drawn))
        return len(drawn) - since >= n

    def take_unsent():
        queue = _webrtc_video_queue(output)
        while queue is not None and not queue.empty():
            unsent.append(queue.get_nowait())
        return ()

    frames = script(wait(WAIT_S, lambda: len(connection.video_writes) >= 10),
                    TTSStartedFrame(), tts_frames(samples, rate),
                    wait(WAIT_S, lambda: speech_drawn() >= 25),
                    note_queued, InterruptionFrame(),
                    wait(WAIT_S, lambda: fresh_drawn(15)), take_unsent)
    run(run_test(Pipeline([service, output]), frames_to_send=frames, observers=[out], start_timeout=START_S))

    writes = [image for _, image in connection.video_writes]
    fresh = made_after()
    assert writes and fresh and unsent, (len(writes), len(fresh), len(unsent))
    first = next(i for i, image in enumerate(writes) if image is fresh[0])
    # every image drawn before the first one made after the interruption was dropped, none sent
    assert service.dropped_video == first >= queued["interrupt"] >= 35, (service.dropped_video, first, queued)
    assert sum(AUDIO_KEY in image.metadata for image in writes[:first]) >= 25, "speech images were dropped"
    assert unsent == writes[first:], "the track sends the images drawn after the interruption, in order"
    assert unsent[0] is fresh[0]
    fresh_ids = {id(image) for image in fresh}
    assert all(id(image) in fresh_ids for image in unsent), "no image made before the interruption is sent"
    # the first images sent show a closed mouth: idle, no speech
    assert not any(AUDIO_KEY in image.metadata for image in unsent)
    idle = _openings([image for image in writes[:first] if AUDIO_KEY not in image.metadata][:5])
    spoken = _openings([image for image in writes[:first] if AUDIO_KEY in image.metadata])
    closed = _openings(unsent[:5])
    assert spoken.max() > idle.mean() + 0.05, (idle, spoken)
    assert closed.max() < idle.mean() + 0.3 * (spoken.max() - idle.mean()), (idle, spoken, closed)
