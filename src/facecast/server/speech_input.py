"""Speech from a request: text (offline text-to-speech) or an uploaded audio file, validated."""

from __future__ import annotations

import time

from facecast.audio.tts import check_text
from facecast.engine import Speech, speech_from_text
from facecast.errors import InvalidArgument
from facecast.server.settings import ServerSettings
from facecast.streaming.telemetry import Telemetry


def check_one_source(text: str | None, has_audio: bool, *, required: bool = True) -> None:
    """Exactly one of text and audio (or neither, when not required); InvalidArgument otherwise."""
    has_text = text is not None and text != ""
    if has_text and has_audio:
        raise InvalidArgument("give either 'text' or an 'audio' file, not both")
    if required and not has_text and not has_audio:
        raise InvalidArgument("give a 'text' field or an 'audio' file to speak")


def build_speech(text: str | None, audio: bytes | None, audio_name: str, voice: str,
                 settings: ServerSettings, telemetry: Telemetry) -> Speech:
    """Speech for text (synthesized) or audio bytes (decoded). Blocking: run it in a worker."""
    if audio is not None:
        return _decode(audio, audio_name, settings, telemetry)
    return _synthesize(text or "", voice, settings, telemetry)


def _synthesize(text: str, voice: str, settings: ServerSettings, telemetry: Telemetry) -> Speech:
    check_text(text, settings.max_text_chars)  # the CLI's rules; synthesis refuses a text with nothing speakable
    start = time.perf_counter()
    speech = speech_from_text(text, voice)
    telemetry.observe("tts_ms", (time.perf_counter() - start) * 1000)
    return speech


def _decode(data: bytes, name: str, settings: ServerSettings, telemetry: Telemetry) -> Speech:
    from facecast.audio.decode import load_audio

    start = time.perf_counter()
    audio = load_audio(data, name=name)
    telemetry.observe("decode_ms", (time.perf_counter() - start) * 1000)
    if audio.duration > settings.max_speech_s:
        raise InvalidArgument(f"{name}: {audio.duration:.0f} s of audio, at most {settings.max_speech_s:g} s "
                              "are accepted")
    return Speech(audio)
