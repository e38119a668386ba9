"""Offline text-to-speech with espeak-ng (through ctypes), returning audio and timed phonemes."""

from __future__ import annotations

import ctypes
import re
import threading
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import numpy as np

from facecast.audio.pcm import Audio
from facecast.errors import EmptyAudio, InvalidArgument

# Values from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_EE_OK = 0
_SSML = 0x10  # espeakSSML: the text is SSML (espeak-ng's subset: <speak>, <break>, <prosody>, <say-as>, ...)
_BUFFER_MS = 100  # length of the audio buffers handed to the callback

RATE_WPM_MIN = 80  # espeakRATE_MINIMUM
RATE_WPM_MAX = 450  # espeakRATE_MAXIMUM

MAX_TEXT_CHARS = 5000  # characters spoken at once, by the CLI and the server (ServerSettings.max_text_chars)
MAX_BREAK_S = 10.0  # s: longest SSML <break> (espeak-ng's own cap is longer and would only add silence)
_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")  # something that looks like a markup tag
_BREAK_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*$")


@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme of synthesized speech: [start, end) in seconds, espeak's ASCII mnemonic."""

    start: float
    end: float
    name: str


@dataclass(frozen=True)
class Speech:
    """What drives the mouth: mono audio, and for synthesized text its phonemes in time order
    (None for recorded speech, whose mouth motion comes from the audio itself)."""

    audio: Audio
    phonemes: list[PhonemeEvent] | None = None


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the output
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

_LOCK = threading.Lock()  # espeak-ng is a process-wide singleton
_engine: _Espeak | None = None


def synthesize(text: str, voice: str = "en", rate_wpm: int = 165) -> Speech:
    """Speak `text` with an espeak-ng voice ("en", "de", "fr", "en-us", "en+f3", ...).

    text: plain text, or SSML when it starts with <speak> (see `check_text`; the length limit is the
        caller's: the CLI and the server call check_text with theirs first).
    rate_wpm: speaking rate in words per minute, 80..450.
    Returns Speech: audio (N,) float32 at espeak's rate (22050 Hz) and phonemes with times in s.
    Raises InvalidArgument (see `check_text`) and EmptyAudio when nothing in the text is speakable.
    """
    ssml = check_text(text, max_chars=None)
    if not isinstance(rate_wpm, int) or not RATE_WPM_MIN <= rate_wpm <= RATE_WPM_MAX:
        raise InvalidArgument(f"rate_wpm: must be {RATE_WPM_MIN}..{RATE_WPM_MAX}, got {rate_wpm!r}")
    with _LOCK:
        engine = _get_engine()
        engine.set_voice(voice)
        engine.set_rate(rate_wpm)
        pcm, marks = engine.speak(text, ssml=ssml)
    if not any(not name.startswith("_") for _, name in marks):
        raise EmptyAudio(nothing_speakable(text))
    audio = Audio(samples=(pcm.astype(np.float32) / 32768.0), sample_rate=engine.sample_rate)
    return Speech(audio=audio, phonemes=_timed_phonemes(marks, audio.duration))


def check_text(text: str, max_chars: int | None = MAX_TEXT_CHARS) -> bool:
    """The text rules of the CLI and the server, checked before synthesis. Returns whether `text` is SSML.

    Plain text: not empty or only spaces, at most `max_chars` characters (None: no limit), no markup tags. SSML (text
    that starts with <speak>, after spaces): well-formed XML in espeak-ng's SSML subset; <break
    time="500ms"/> or time="2s" gives that much silence (at most MAX_BREAK_S each).
    Raises InvalidArgument naming the problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"text: nothing to say (the text is empty or only spaces), got {text!r}")
    if max_chars is not None and len(text) > max_chars:
        raise InvalidArgument(f"text: {len(text)} characters, at most {max_chars} are spoken at once; "
                              "split it into shorter parts")
    if "\0" in text:
        raise InvalidArgument("text: contains a NUL character")
    if not text.lstrip().startswith("<speak"):
        tag = _TAG.search(text)
        if tag:
            raise InvalidArgument(f"text: markup {tag.group(0)[:40]!r} is not spoken; remove the tags, or give "
                                  "SSML that starts with <speak> and ends with </speak>")
        return False
    try:
        root = ElementTree.fromstring(text.strip())
    except ElementTree.ParseError as exc:
        raise InvalidArgument(f"text: SSML that is not well-formed XML ({exc})") from None
    if root.tag != "speak":
        raise InvalidArgument(f"text: SSML must be one <speak> element, got <{root.tag}>")
    for node in root.iter("break"):
        time = node.get("time")
        if time is None:
            continue
        match = _BREAK_TIME.match(time)
        if not match:
            raise InvalidArgument(f"text: <break time={time!r}/>: give a time such as '500ms' or '2s'")
        seconds = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
        if seconds > MAX_BREAK_S:
            raise InvalidArgument(f"text: <break time={time!r}/> is longer than {MAX_BREAK_S:g} s")
    return True


def nothing_speakable(text: str) -> str:
    """The one message for a text without words (only punctuation, spaces or SSML breaks)."""
    return f"text: nothing speakable in {text[:40]!r} (no words, only punctuation, spaces or pauses)"


def _get_engine() -> _Espeak:
    """The shared espeak-ng instance, created on first use (call with _LOCK held)."""
    global _engine
    if _engine is None:
        _engine = _Espeak()
    return _engine


def _timed_phonemes(marks: list[tuple[float, str]], duration: float) -> list[PhonemeEvent]:
    """(start s, name) marks in output order -> events that end where the next one starts."""
    events = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else duration
        start, end = min(start, duration), min(max(end, start), duration)
        events.append(PhonemeEvent(start=start, end=end, name=name))
    return events


class _Espeak:
    """Thin ctypes wrapper: load libespeak-ng, initialise it, collect samples and phoneme events."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare()
        data = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, _INITIALIZE_PHONEME_EVENTS
        )
        if rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise with data at {data.decode()}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._marks: list[tuple[float, str]] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int

    def set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        ok = isinstance(voice, str) and voice.strip() and "\0" not in voice
        if not ok or self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise InvalidArgument(
                f"voice: espeak-ng has no voice {voice!r}; use a language code such as "
                "'en', 'en-us', 'de', 'fr', 'es' (optionally with a variant, e.g. 'en+f3')"
            )
        self._voice = voice

    def set_rate(self, rate_wpm: int) -> None:
        self._lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0)

    def speak(self, text: str, ssml: bool = False) -> tuple[np.ndarray, list[tuple[float, str]]]:
        """Synthesize synchronously: (N,) int16 samples and (start s, phoneme name) marks."""
        self._chunks, self._marks = [], []
        data = text.encode("utf-8") + b"\0"
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm, self._marks

    def _on_audio(self, wav, n_samples, events) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = event.id.string.decode("utf-8", errors="replace")
                self._marks.append((event.audio_position / 1000.0, name))
            i += 1
        return 0  # continue synthesis
