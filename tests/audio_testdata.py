"""Helpers of the audio tests: facts about the speech clips, synthetic speech-like signals."""

from __future__ import annotations

import io
import subprocess
import sys
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

# Durations (s) and native rates from shared/data/MANIFEST.md. The MP3 is "the first 18.77 s" of
# its source; the manifest's "about 18.9 s" is ffprobe's size-based estimate.
SPEECH = {
    "en_radio_address_01_8s.wav": (8.0, 16000),
    "en_radio_address_02_8s.wav": (8.0, 16000),
    "en_male_02_19s.mp3": (18.77, 16000),
    "de_01_9s.wav": (9.3, 48000),
    "fr_01_7s.wav": (6.7, 48000),
    "ru_01_6s.wav": (6.2, 48000),
    "ja_01_9s.wav": (9.1, 48000),
    "zh_news_01_8s.wav": (8.0, 48000),
    "zh_short_01_3s.wav": (3.4, 48000),
}
# Formants (Hz, bandwidth Hz) of a few vowels, textbook averages for an adult male voice.
VOWELS = {
    "a": [(750, 90), (1200, 110), (2600, 160)],
    "i": [(300, 60), (2300, 120), (3000, 170)],
    "u": [(320, 60), (800, 80), (2400, 160)],
}


def synthetic_vowel(vowel: str, seconds: float, rate: int = 16000, f0: float = 120.0) -> np.ndarray:
    """A glottal pulse train through formant resonators: (N,) float32, peak 0.5."""
    n = int(round(seconds * rate))
    x = np.zeros(n)
    x[:: int(rate / f0)] = 1.0
    for freq, bandwidth in VOWELS[vowel]:
        radius = np.exp(-np.pi * bandwidth / rate)
        theta = 2.0 * np.pi * freq / rate
        x = lfilter([1.0 - radius], [1.0, -2.0 * radius * np.cos(theta), radius**2], x)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


_ESPEAK_CODE = """
import sys
import numpy as np
from facecast.audio.tts import synthesize
audio = synthesize(sys.argv[1], voice=sys.argv[2], rate_wpm=int(sys.argv[3])).audio
np.save(sys.stdout.buffer, np.append(audio.samples, np.float32(audio.sample_rate)))
"""


@lru_cache(maxsize=None)
def fresh_espeak(text: str, voice: str = "en", rate_wpm: int = 165) -> tuple[np.ndarray, int]:
    """espeak-ng saying `text` as a fresh process says it: ((N,) float32 samples, rate in Hz).

    In one process espeak-ng carries state from an utterance to the next (the same text comes out
    a few samples different each time), so speech synthesized in the test process depends on what
    the suite synthesized before; a speech recogniser's test must not.
    """
    out = subprocess.run([sys.executable, "-c", _ESPEAK_CODE, text, voice, str(rate_wpm)],
                         check=True, capture_output=True).stdout
    values = np.load(io.BytesIO(out))
    return values[:-1].astype(np.float32), int(values[-1])
