"""facecast.audio.visemes: phoneme mouth targets and the co-articulated per-frame track."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.audio.tts import PhonemeEvent, synthesize
from facecast.audio.visemes import mouth_target, phonemes_to_track
from facecast.errors import InvalidArgument

FPS = 25


def _events(spec: list[tuple[str, float]]) -> list[PhonemeEvent]:
    """[(name, duration s)] -> back-to-back PhonemeEvents starting at 0."""
    out, t = [], 0.0
    for name, duration in spec:
        out.append(PhonemeEvent(start=t, end=t + duration, name=name))
        t += duration
    return out


def _frame(t: float) -> int:
    return int(t * FPS)


@pytest.mark.parametrize("name", ["p", "b", "m"])
def test_bilabials_close_the_lips(name):
    assert mouth_target(name)[0] == 0.0


@pytest.mark.parametrize("name", ["f", "v"])
def test_labiodentals_nearly_close(name):
    assert 0.0 < mouth_target(name)[0] < 0.1


def test_vowel_shapes():
    a, i, u, o, e = (mouth_target(n) for n in ("a", "i", "u", "o", "e"))
    assert a[0] > o[0] > u[0] and a[0] > e[0] > i[0]  # open vowels open more
    assert i[1] > 0.5 and u[1] < -0.5  # i spreads, u narrows
    assert u[2] > 0.8 and i[2] == 0.0  # u rounds
    names = ("a", "a:", "A:", "E", "e:", "I", "i:", "O", "o:", "U", "u:", "@", "3", "V", "y", "Y")
    for name in names:
        open_, width, round_ = mouth_target(name)
        assert 0.0 <= open_ <= 1.0 and -1.0 <= width <= 1.0 and 0.0 <= round_ <= 1.0


def test_stress_length_and_nasal_marks_are_ignored():
    assert mouth_target("'a:") == mouth_target("a")
    assert mouth_target(",o") == mouth_target("o")
    assert mouth_target("O~") == mouth_target("O")
    assert mouth_target("d;") == mouth_target("d")


def test_unknown_names_fall_back_by_first_character():
    assert mouth_target("mX") == mouth_target("m")
    assert mouth_target("u7") == mouth_target("u")
    open_, width, round_ = mouth_target("9%")
    assert 0.0 < open_ < 1.0 and width == 0.0 and round_ == 0.0


@pytest.mark.parametrize("name", ["_", "_:", "_!", ""])
def test_pauses_are_closed(name):
    assert mouth_target(name) == (0.0, 0.0, 0.0)


def test_track_closes_for_m_and_opens_for_a():
    spec = [("_", 0.4), ("m", 0.1), ("a:", 0.3), ("p", 0.08), ("a", 0.2), ("_", 0.5)]
    track = phonemes_to_track(_events(spec), 63, FPS)
    assert track.shape == (63, 3) and track.dtype == np.float32
    assert np.all(track[: _frame(0.25)] == 0.0), "long pause before speech is not closed"
    assert track[_frame(0.45), 0] == 0.0  # middle of /m/: lips shut
    assert track[_frame(0.65), 0] > 0.7  # middle of /a:/
    assert track[_frame(0.84), 0] < 0.3  # /p/ pulls toward closure
    assert np.all(track[_frame(1.35) :] == 0.0), "long pause after speech is not closed"


def test_anticipation_starts_before_the_vowel():
    spec = [("_", 0.6), ("a", 0.4), ("_", 0.6)]
    track = phonemes_to_track(_events(spec), 40, FPS)
    onset = _frame(0.6)
    assert track[onset - 2, 0] > 0.05  # 40..80 ms ahead the jaw is already moving
    assert track[onset - 5, 0] == 0.0  # but not 200 ms ahead


def test_track_is_smooth():
    speech = synthesize("Hello there, how are you doing today?")
    track = phonemes_to_track(speech.phonemes, speech.audio.frame_count(FPS), FPS)
    opening = track[:, 0]
    assert opening.std() > 0.1
    assert np.abs(np.diff(opening, 2)).mean() < 0.6 * opening.std()
    assert track[-1, 0] < 0.1  # ends closed


def test_empty_phonemes_give_a_closed_mouth():
    np.testing.assert_array_equal(phonemes_to_track([], 10, FPS), np.zeros((10, 3), np.float32))


def test_bad_fps():
    with pytest.raises(InvalidArgument, match="fps"):
        phonemes_to_track([], 10, 0)


def _long_speech(n_phonemes: int, step: float = 0.08) -> list[PhonemeEvent]:
    names = ["h", "@", "l", "'oU", "w", "'3:", "l", "d", "_:"]
    return [PhonemeEvent(i * step, (i + 1) * step, names[i % len(names)]) for i in range(n_phonemes)]


def test_memory_is_linear_in_the_text_length():
    """Issue 12 item 2: the phoneme -> frame weights were a dense (phonemes x frames) float64 matrix
    (4000 x 8000 here: 256 MB); a phoneme now weighs only the frames near it."""
    import tracemalloc

    phonemes = _long_speech(4000)  # 320 s of speech
    n_frames = int(4000 * 0.08 * FPS)
    tracemalloc.start()
    try:
        track = phonemes_to_track(phonemes, n_frames, FPS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert track.shape == (n_frames, 3)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB for {n_frames} frames"


def test_a_phoneme_far_away_does_not_move_the_mouth():
    """The track near a phoneme depends only on its neighbours, however long the text."""
    short = _long_speech(50)
    long = _long_speech(5000)
    n = int(50 * 0.08 * FPS) - 10  # stop well before the 50th phoneme ends
    np.testing.assert_allclose(phonemes_to_track(short, n, FPS), phonemes_to_track(long, n, FPS)[:n], atol=1e-6)
