"""facecast.audio.mouth: language-independent mouth motion from speech audio, offline and live."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from audio_testdata import SPEECH, synthetic_vowel
from conftest import DATA

from facecast.audio import mouth
from facecast.audio.decode import load_audio
from facecast.audio.mouth import MouthStream, mouth_track
from facecast.audio.pcm import Audio
from facecast.errors import InvalidArgument

FPS = 25
CLIPS = sorted(SPEECH)
SILENCE_GAP_CLIPS = ["ru_01_6s.wav", "ja_01_9s.wav"]  # contain digital silence (MANIFEST)


@lru_cache(maxsize=None)
def _clip(name: str) -> Audio:
    return load_audio(DATA / "speech" / name)


@lru_cache(maxsize=None)
def _track(name: str) -> np.ndarray:
    return mouth_track(_clip(name), FPS)


def _stream(audio: Audio, seed: int = 0) -> np.ndarray:
    """Push `audio` through a MouthStream in random chunks of 5..150 ms."""
    stream = MouthStream(audio.sample_rate, FPS)
    rng, rows, i = np.random.default_rng(seed), [], 0
    while i < len(audio.samples):
        n = int(rng.integers(audio.sample_rate // 200, audio.sample_rate // 7))
        rows.append(stream.push(audio.samples[i : i + n]))
        i += n
    rows.append(stream.flush())
    return np.concatenate(rows)


def _silence_tone_silence(rate: int = 16000) -> Audio:
    """1 s of digital silence, 1 s of a synthetic /a/, 1 s of digital silence."""
    silence = np.zeros(rate, np.float32)
    return Audio(np.concatenate([silence, synthetic_vowel("a", 1.0, rate), silence]), rate)


def _frame_rms_db(audio: Audio, n: int) -> np.ndarray:
    power = [np.mean(audio.samples[audio.frame_slice(f, FPS)] ** 2) for f in range(n)]
    return 10 * np.log10(np.array(power) + 1e-12)


@pytest.mark.parametrize("name", CLIPS)
def test_shape_ranges_and_movement(data_dir, name):
    audio, track = _clip(name), _track(name)
    assert track.shape == (audio.frame_count(FPS), 3) and track.dtype == np.float32
    opening, width, round_ = track.T
    assert opening.min() >= 0 and opening.max() <= 1
    assert width.min() >= -1 and width.max() <= 1
    assert round_.min() >= 0 and round_.max() <= 1
    assert opening.std() > 0.1, "the mouth barely moves during speech"
    assert opening.max() > 0.5
    assert width.std() > 0.05


@pytest.mark.parametrize("name", CLIPS)
def test_no_jitter(data_dir, name):
    opening = _track(name)[:, 0]
    # Real lips measured on the talking clips: 0.3..0.64 of their std.
    assert np.abs(np.diff(opening, 2)).mean() < 0.5 * opening.std()


@pytest.mark.parametrize("name", SILENCE_GAP_CLIPS)
def test_digital_silence_closes_the_mouth(data_dir, name):
    audio, track = _clip(name), _track(name)
    silent = np.array(
        [np.abs(audio.samples[audio.frame_slice(f, FPS)]).max() < 1e-4 for f in range(len(track))]
    )
    runs = _runs(silent, min_len=5)
    assert runs, f"{name}: expected a digital-silence gap"
    for start, stop in runs:  # allow one frame to close and two to anticipate the next onset
        assert np.all(track[start + 1 : stop - 2] == 0.0), f"mouth open in silence {start}..{stop}"


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, stop) of True runs at least min_len long."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_len]


@pytest.mark.parametrize("name", SILENCE_GAP_CLIPS)
def test_onsets_after_silence_are_not_late(data_dir, name):
    audio, track = _clip(name), _track(name)
    loud = _frame_rms_db(audio, len(track)) > -45.0
    for start, stop in _runs(~loud, min_len=5):
        if stop < len(track):  # speech resumes at frame `stop`
            # any movement counts: a word may start with closed, rounded lips (m, w, o)
            moving = np.abs(track[start : stop + 5]).max(axis=1) > 0.05
            first = start + np.flatnonzero(moving)[0]
            assert first <= stop, f"{name}: mouth moves at frame {first}, sound at {stop}"


def test_silence_tone_silence():
    track = mouth_track(_silence_tone_silence(), FPS)
    assert track.shape == (75, 3)
    assert np.all(track[:23] == 0.0) and np.all(track[52:] == 0.0)
    assert track[24, 0] > 0.0  # anticipates the onset at frame 25
    assert track[26, 0] > 0.5  # and is open 40..80 ms into the vowel
    assert track[30:48, 0].min() > 0.8  # an /a/ opens wide


def test_vowels_shape_the_mouth():
    rate, gap = 16000, np.zeros(8000, np.float32)
    x = np.concatenate([gap, synthetic_vowel("a", 0.6), gap, synthetic_vowel("i", 0.6), gap,
                        synthetic_vowel("u", 0.6), gap])
    track = mouth_track(Audio(x, rate), FPS)
    a, i, u = (track[int((0.5 + k * 1.1 + 0.15) * FPS) : int((0.5 + k * 1.1 + 0.5) * FPS)].mean(0)
               for k in range(3))
    assert a[0] > 2 * i[0] and a[0] > 2 * u[0]  # open vowel opens most
    assert i[1] > a[1] > u[1] and i[1] > 0.3 and u[1] < 0  # i spreads, u narrows
    assert u[2] > i[2] and u[2] > 0.1  # u rounds


def test_loud_and_quiet_recordings_match(data_dir):
    audio = _clip("en_radio_address_02_8s.wav")
    quiet = Audio((audio.samples * 0.1).astype(np.float32), audio.sample_rate)  # -20 dB
    loud, soft = _track("en_radio_address_02_8s.wav"), mouth_track(quiet, FPS)
    assert np.abs(loud - soft).max() < 0.05


def test_streaming_matches_offline(data_dir):
    for k, name in enumerate(CLIPS):
        offline, live = _track(name), _stream(_clip(name), seed=k)
        assert live.shape == offline.shape
        r = np.corrcoef(offline[:, 0], live[:, 0])[0, 1]
        assert r > 0.9, f"{name}: streaming open correlates only {r:.3f} with offline"


def test_streaming_hardly_depends_on_the_chunk_size(data_dir):
    """20 ms chunks (a live microphone, LiveKit) and 100 ms chunks (a TTS) give the same mouth."""
    for name in CLIPS:
        audio = _clip(name)
        tracks = []
        for chunk_s in (0.01, 0.1):
            stream, n = MouthStream(audio.sample_rate, FPS), int(audio.sample_rate * chunk_s)
            rows = [stream.push(audio.samples[i: i + n]) for i in range(0, len(audio.samples), n)]
            tracks.append(np.concatenate(rows + [stream.flush()]))
        small, large = tracks
        assert small.shape == large.shape
        assert np.abs(small - large).mean() < 0.02, name
        assert np.corrcoef(small[:, 0], large[:, 0])[0, 1] > 0.98, name


def test_the_live_normaliser_is_refitted_on_a_schedule_not_per_push(monkeypatch):
    """20 ms pushes must not each refit the normaliser over 30 s of history (1 ms a push, which
    held a live session's frames back): after the first 2 s, one fit per 100 ms of audio."""
    fits = []
    fit = mouth.Normaliser.fit
    monkeypatch.setattr(mouth.Normaliser, "fit", staticmethod(lambda *a, **k: fits.append(1) or fit(*a, **k)))
    tone = np.tile(np.concatenate([np.zeros(8000, np.float32), synthetic_vowel("a", 1.0, 16000)]), 14)  # 21 s
    stream = MouthStream(16000, FPS)
    for i in range(0, len(tone), 320):  # 20 ms
        stream.push(tone[i: i + 320])
    eager = mouth.EAGER_REFIT_HOPS // 2  # pushes of 2 hops while the history is short
    assert len(fits) <= eager + 1 + (len(tone) // 160) // mouth.REFIT_HOPS

    fits.clear()  # a stream of noise only (nothing ever speech): a fit per 100 ms, not per push
    stream = MouthStream(16000, FPS)
    noise = (0.01 * np.random.default_rng(0).standard_normal(16000 * 10)).astype(np.float32)
    for i in range(0, len(noise), 320):
        stream.push(noise[i: i + 320])
    assert len(fits) <= eager + 1 + (len(noise) // 160) // mouth.REFIT_HOPS


def test_streaming_latency_is_bounded():
    audio = _silence_tone_silence(rate=48000)
    stream = MouthStream(48000, FPS)
    chunk, emitted = 960, 0  # 20 ms
    for i in range(0, len(audio.samples), chunk):
        emitted += len(stream.push(audio.samples[i : i + chunk]))
        pushed_s = (i + chunk) / 48000
        assert emitted >= int((pushed_s - 0.1) * FPS) - 1  # at most ~80 ms of lookahead + 1 frame
    assert emitted + len(stream.flush()) == audio.frame_count(FPS)


def test_live_lookahead_shortens_the_wait_and_keeps_the_mouth(data_dir):
    """Live streams wait for 40 ms of look-ahead, not 80: each frame comes 40 ms of audio sooner,
    and the track still follows the offline one computed with the same look-ahead."""
    audio = _silence_tone_silence(rate=48000)
    waits = {}
    for lookahead in (mouth.LOOKAHEAD_HOPS, mouth.LIVE_LOOKAHEAD_HOPS):
        stream, first_at = MouthStream(48000, FPS, lookahead), []
        for i in range(0, len(audio.samples), 480):  # 10 ms chunks
            first_at += [(i + 480) / 48000] * len(stream.push(audio.samples[i: i + 480]))
        waits[lookahead] = np.median(np.array(first_at) - (np.arange(len(first_at)) + 1) / FPS)
    assert abs(waits[mouth.LOOKAHEAD_HOPS] - waits[mouth.LIVE_LOOKAHEAD_HOPS] - 0.04) < 0.011, waits
    assert waits[mouth.LIVE_LOOKAHEAD_HOPS] < 0.06, waits  # frame end -> emitted: ~45 ms
    for name in CLIPS:
        clip = _clip(name)
        stream = MouthStream(clip.sample_rate, FPS, mouth.LIVE_LOOKAHEAD_HOPS)
        n = clip.sample_rate // 50
        live = np.concatenate([stream.push(clip.samples[i: i + n]) for i in range(0, len(clip.samples), n)]
                              + [stream.flush()])
        offline = mouth_track(clip, FPS, mouth.LIVE_LOOKAHEAD_HOPS)
        assert live.shape == offline.shape
        assert np.corrcoef(offline[:, 0], live[:, 0])[0, 1] > 0.9, name
        assert np.corrcoef(offline[:, 0], _track(name)[:, 0])[0, 1] > 0.9, name  # close to 80 ms too


def test_streaming_silence_tone_silence():
    audio = _silence_tone_silence(rate=22050)
    live = _stream(audio)
    assert np.all(live[:23] == 0.0) and np.all(live[52:] == 0.0)
    assert live[30:48, 0].min() > 0.5


def test_stream_reset_and_empty_pushes():
    audio = _clip("zh_short_01_3s.wav")
    stream = MouthStream(audio.sample_rate, FPS)
    assert stream.push(np.zeros(0, np.float32)).shape == (0, 3)
    stream.push(audio.samples[: audio.sample_rate])
    stream.reset()  # drops the utterance in progress ...
    stream.forget_levels()  # ... and this the levels learnt: as good as new
    first = np.concatenate([stream.push(audio.samples), stream.flush()])
    fresh = MouthStream(audio.sample_rate, FPS)
    np.testing.assert_array_equal(first, np.concatenate([fresh.push(audio.samples), fresh.flush()]))
    assert first.shape == (audio.frame_count(FPS), 3)
    second = np.concatenate([stream.push(audio.samples), stream.flush()])  # flush starts the next one
    assert second.shape == first.shape and np.corrcoef(first[:, 0], second[:, 0])[0, 1] > 0.95


def test_later_utterances_open_the_mouth_from_their_first_frame(data_dir):
    """A live stream keeps the voice's levels across utterances: an utterance that starts on a
    voiced sound (a TTS chunk, a client that sends only speech) opens the mouth on its first frame,
    not after the normaliser has seen 50 ms of it again."""
    audio = _clip("en_radio_address_01_8s.wav")
    x = audio.samples
    rms = np.sqrt(np.convolve(x ** 2, np.ones(160) / 160, "same"))
    onset = int(np.argmax(rms > 0.3 * rms.max()))
    utterance = x[onset: onset + audio.sample_rate]  # starts in the middle of a loud sound
    stream, n = MouthStream(audio.sample_rate, FPS, mouth.LIVE_LOOKAHEAD_HOPS), audio.sample_rate // 50

    def say() -> np.ndarray:
        return np.concatenate([stream.push(utterance[i: i + n]) for i in range(0, len(utterance), n)]
                              + [stream.flush()])

    cold, warm = say(), say()
    assert warm[0, 0] > 0.3, warm[:3, 0]
    assert warm[0, 0] > cold[0, 0] + 0.1, (cold[:3, 0], warm[:3, 0])
    stream.push(utterance[: len(utterance) // 2])
    stream.reset()  # an interrupt keeps the levels too
    assert say()[0, 0] > 0.3


def test_bad_arguments():
    with pytest.raises(InvalidArgument, match="fps"):
        mouth_track(_silence_tone_silence(), 0)
    with pytest.raises(InvalidArgument, match="sample_rate"):
        MouthStream(0, FPS)
