"""Offline text-to-speech for pipecat: facecast's espeak-ng voice as a pipecat `TTSService`.

`EspeakTTSService` speaks each text it is given with espeak-ng (facecast.audio.tts.synthesize, off
the event loop) and streams the audio as `TTSAudioRawFrame`s of CHUNK_S seconds, resampled to the
pipeline's output rate, between a `TTSStartedFrame` and a `TTSStoppedFrame`. It needs no network
and no model download; any other pipecat TTS service takes its place unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncGenerator, AsyncIterator

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from facecast.audio.tts import RATE_WPM_MAX, RATE_WPM_MIN, synthesize
from facecast.errors import InvalidArgument

CHUNK_S = 0.1  # s of audio per TTSAudioRawFrame (as a streaming TTS would send it)


@dataclass
class EspeakTTSSettings(TTSSettings):
    """Settings of EspeakTTSService: `voice` is an espeak-ng voice ("en", "en-us", "de", "en+f3")."""


class EspeakTTSService(TTSService):
    """espeak-ng speech, offline, in-process. voice: an espeak-ng voice; rate_wpm: words/minute."""

    Settings = EspeakTTSSettings
    _settings: EspeakTTSSettings

    def __init__(self, *, voice: str = "en", rate_wpm: int = 165, settings: EspeakTTSSettings | None = None,
                 **kwargs):
        if not isinstance(rate_wpm, int) or not RATE_WPM_MIN <= rate_wpm <= RATE_WPM_MAX:
            raise InvalidArgument(f"rate_wpm={rate_wpm!r}: give {RATE_WPM_MIN}..{RATE_WPM_MAX} words per minute")
        defaults = EspeakTTSSettings(model=None, voice=voice, language=None)
        if settings is not None:
            defaults.apply_update(settings)
        super().__init__(push_start_frame=True, push_stop_frames=True, settings=defaults, **kwargs)
        self.rate_wpm = rate_wpm

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Speak `text`: TTSAudioRawFrames of CHUNK_S s at the pipeline's rate (or an ErrorFrame)."""
        voice = self._settings.voice or "en"
        try:
            await self.start_tts_usage_metrics(text)
            speech = await asyncio.to_thread(synthesize, text, voice, self.rate_wpm)
            audio = speech.audio
            async for frame in self._stream_audio_frames_from_iterator(
                    _pcm16_chunks(audio.samples, int(audio.sample_rate * CHUNK_S)),
                    in_sample_rate=audio.sample_rate, context_id=context_id):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as error:  # a failed utterance travels as a frame; the pipeline lives on
            yield ErrorFrame(error=f"espeak-ng could not speak {text[:40]!r}: {error}")
        finally:
            await self.stop_ttfb_metrics()


async def _pcm16_chunks(samples: np.ndarray, chunk: int) -> AsyncIterator[bytes]:
    """samples (n,) float32 in [-1, 1] as 16-bit little-endian PCM bytes, `chunk` samples at a time."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    for start in range(0, len(pcm), max(1, chunk)):
        yield pcm[start: start + chunk].tobytes()
