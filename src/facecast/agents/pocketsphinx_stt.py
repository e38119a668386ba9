"""Offline speech recognition for pipecat: pocketsphinx with the English model in its wheel.

`PocketsphinxSTTService` is a pipecat `SegmentedSTTService`: the VAD in front of it marks where an
utterance starts and stops, and each utterance is decoded in one go off the event loop. Quality is
that of a small 2010s-era acoustic model (short, clearly spoken questions work; names and rare words
do not); its virtue is that it needs no network, no download and ~50 MB of memory. Any other pipecat
STT service takes its place in a pipeline unchanged.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncGenerator

from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

SAMPLE_RATE = 16_000  # Hz: the bundled en-us acoustic model's rate


def load_decoder(**config):
    """A pocketsphinx Decoder on the bundled en-us model (blocking, ~0.5 s); `config` overrides
    pocketsphinx options (hmm=, lm=, dict=, ...)."""
    from pocketsphinx import Decoder

    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **config)


def transcribe(decoder, pcm: bytes) -> str:
    """The decoder's best hypothesis for one utterance: pcm is 16-bit mono at 16 kHz; "" if none."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr.strip() if hyp is not None else ""


class PocketsphinxSTTService(SegmentedSTTService):
    """Transcribes each VAD-delimited utterance with pocketsphinx (offline, CPU, English).

    decoder_config: pocketsphinx options (e.g. another language's hmm/lm/dict paths). The last
    decode's duration (s) is kept in `last_decode_s` for latency breakdowns.
    """

    def __init__(self, *, decoder_config: dict | None = None, **kwargs):
        kwargs.setdefault("trailing_silence_secs", 0.2)
        super().__init__(sample_rate=SAMPLE_RATE, **kwargs)
        self._decoder_config = dict(decoder_config or {})
        self._decoder = None
        self._lock = asyncio.Lock()  # one decoder, one utterance at a time
        self.last_decode_s: float | None = None

    @property
    def wants_wav_segments(self) -> bool:
        """Raw 16-bit PCM, which pocketsphinx reads directly."""
        return False

    def can_generate_metrics(self) -> bool:
        return True

    def language_to_service_language(self, language: Language) -> str | None:
        return "en-us" if str(language).startswith("en") else None

    async def _ensure_decoder(self):
        if self._decoder is None:
            self._decoder = await asyncio.to_thread(load_decoder, **self._decoder_config)
        return self._decoder

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        """audio: one utterance, 16-bit mono PCM at 16 kHz. Yields a TranscriptionFrame when
        anything was recognised (nothing for noise), or an ErrorFrame."""
        await self.start_processing_metrics()
        try:
            async with self._lock:
                decoder = await self._ensure_decoder()
                started = time.perf_counter()
                text = await asyncio.to_thread(transcribe, decoder, audio)
                self.last_decode_s = time.perf_counter() - started
        except Exception as e:  # a bad utterance must not end the conversation
            yield ErrorFrame(error=f"pocketsphinx failed: {e}")
            return
        finally:
            await self.stop_processing_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), Language.EN)
