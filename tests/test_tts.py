"""facecast.audio.tts: offline espeak-ng speech with timed phonemes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facecast.audio.tts import PhonemeEvent, Speech, synthesize
from facecast.errors import InvalidArgument

TEXTS = {
    "en": "The quick brown fox jumps over the lazy dog.",
    "de": "Guten Morgen, wie geht es Ihnen heute?",
    "fr": "Bonjour, je voudrais un café, s'il vous plaît.",
}


@pytest.mark.parametrize("voice", sorted(TEXTS))
def test_speech_and_phonemes(voice):
    speech = synthesize(TEXTS[voice], voice=voice)
    assert isinstance(speech, Speech)
    audio = speech.audio
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.sample_rate == 22050
    assert 1.0 < audio.duration < 6.0
    assert np.sqrt(np.mean(audio.samples**2)) > 0.01
    assert np.abs(audio.samples).max() <= 1.0
    _check_phonemes(speech.phonemes, audio.duration)


def _check_phonemes(phonemes: list[PhonemeEvent], duration: float) -> None:
    names = [p.name for p in phonemes if not p.name.startswith("_")]
    assert len(names) >= 15  # a sentence has dozens of phonemes
    starts = np.array([p.start for p in phonemes])
    ends = np.array([p.end for p in phonemes])
    assert np.all(np.diff(starts) >= 0), "phonemes out of order"
    assert np.all(ends >= starts)
    assert starts.min() >= 0 and ends.max() <= duration + 1e-9
    assert all(isinstance(n, str) and n for n in names)


def test_languages_use_their_own_phonemes():
    german = {p.name.strip("',") for p in synthesize("Grüße aus München", voice="de").phonemes}
    assert "y:" in german or "y" in german  # the umlaut ü is a front rounded vowel
    english = {p.name.strip("',") for p in synthesize("Thank you, the weather").phonemes}
    assert "T" in english and "D" in english  # dental fricatives, as in "thank" and "the"


def test_rate_changes_duration():
    slow = synthesize(TEXTS["en"], rate_wpm=100).audio.duration
    fast = synthesize(TEXTS["en"], rate_wpm=300).audio.duration
    assert slow > 1.8 * fast


def test_parallel_calls_do_not_mix():
    # espeak-ng varies by a few samples from call to call, so compare phonemes and durations.
    texts = ["One two three.", "Guten Abend.", "Seven eight nine ten eleven.", "Bonjour."]
    voices = ["en", "de", "en", "fr"]
    sequential = [synthesize(t, voice=v) for t, v in zip(texts, voices)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda tv: synthesize(tv[0], voice=tv[1]), zip(texts, voices)))
    for a, b in zip(sequential, parallel):
        assert [p.name for p in a.phonemes] == [p.name for p in b.phonemes]
        assert b.audio.duration == pytest.approx(a.audio.duration, abs=0.01)


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(text):
    with pytest.raises(InvalidArgument, match="text"):
        synthesize(text)


def test_unknown_voice_names_it_with_a_hint():
    with pytest.raises(InvalidArgument, match="klingon-xx") as info:
        synthesize("hello", voice="klingon-xx")
    assert "'en'" in str(info.value)
    assert synthesize("hello", voice="en").audio.duration > 0.2  # the engine still works


@pytest.mark.parametrize("rate", [10, 1000])
def test_rate_out_of_range(rate):
    with pytest.raises(InvalidArgument, match="rate_wpm"):
        synthesize("hello", rate_wpm=rate)


@pytest.mark.parametrize("text", ["?!...,;:--", "...", " - ", '<speak><break time="1s"/></speak>'])
def test_nothing_speakable_is_refused(text):
    """Issue 12 item 7: punctuation alone used to give a one-frame clip."""
    from facecast.errors import EmptyAudio

    with pytest.raises(EmptyAudio, match="nothing speakable"):
        synthesize(text)


def test_text_longer_than_the_limit_is_refused():
    from facecast.audio.tts import MAX_TEXT_CHARS, check_text

    check_text("a" * MAX_TEXT_CHARS)
    with pytest.raises(InvalidArgument, match=f"{MAX_TEXT_CHARS + 1} characters, at most {MAX_TEXT_CHARS}"):
        check_text("a" * (MAX_TEXT_CHARS + 1))
    check_text("a" * 20, max_chars=None)  # synthesize leaves the limit to its callers (CLI, server)


def test_ssml_break_is_real_silence():
    """Issue 12 item 8: <speak>..<break time="2s"/>..</speak> is SSML, not words to read aloud."""
    plain = synthesize("Hello world")
    speech = synthesize('<speak>Hello <break time="1500ms"/> world</speak>')
    names = [p.name for p in speech.phonemes if not p.name.startswith("_")]
    assert names == [p.name for p in plain.phonemes if not p.name.startswith("_")]  # no "speak", "break", "time"
    assert plain.audio.duration + 1.2 < speech.audio.duration < plain.audio.duration + 2.0
    hello_end = next(p.end for p in speech.phonemes if p.name == "'oU")
    sr = speech.audio.sample_rate
    gap = speech.audio.samples[int((hello_end + 0.2) * sr): int((hello_end + 1.3) * sr)]
    assert np.abs(gap).max() < 1e-3, "the break is not silent"


@pytest.mark.parametrize("text, match", [
    ("Hello <b>world</b>", "markup '<b>'"),
    ("Say <break time='2s'/> this", "markup"),
    ("<speak>Hello <break time='2s'></speak>", "well-formed"),
    ("<speak>Hi <break time='forever'/></speak>", "forever"),
    ("<speak>Hi <break time='600s'/></speak>", "longer than"),
])
def test_markup_outside_ssml_or_bad_ssml_is_refused(text, match):
    with pytest.raises(InvalidArgument, match=match):
        synthesize(text)


def test_comparison_signs_are_not_markup():
    assert synthesize("one < two and three > two").audio.duration > 1.0
