"""Offline speech recognition for pipecat: pocketsphinx with the English model in its wheel.

`PocketsphinxSTTService` is a pipecat `SegmentedSTTService`: the VAD in front of it marks where an
utterance starts and stops, and each utterance is decoded in one go in a worker process (the decoder
holds the GIL while it works: in a thread it would stall the event loop and the avatar for a second or
more). Quality is that of a small 2010s-era acoustic model (short, clearly spoken questions work;
names and rare words do not); its virtue is that it needs no network, no download and ~50 MB of
memory. Any other pipecat STT service takes its place in a pipeline unchanged.
"""

from __future__ import annotations

import asyncio
from typing import AsyncGenerator

from pipecat.frames.frames import CancelFrame, EndFrame, ErrorFrame, Frame, StartFrame, TranscriptionFrame
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

from facecast.agents.sphinx_worker import SAMPLE_RATE, SphinxWorker, load_decoder, transcribe

__all__ = ["PocketsphinxSTTService", "SAMPLE_RATE", "load_decoder", "transcribe"]


class PocketsphinxSTTService(SegmentedSTTService):
    """Transcribes each VAD-delimited utterance with pocketsphinx (offline, CPU, English).

    decoder_config: pocketsphinx options (e.g. another language's hmm/lm/dict paths). The decoder
    is loaded in its worker process when the pipeline starts. The last decode's duration (s) is kept
    in `last_decode_s` (the decode alone, not the wait for the worker) for latency breakdowns.
    """

    def __init__(self, *, decoder_config: dict | None = None, **kwargs):
        kwargs.setdefault("trailing_silence_secs", 0.2)
        kwargs.setdefault("settings", STTSettings(model="en-us", language=Language.EN))
        super().__init__(sample_rate=SAMPLE_RATE, **kwargs)
        self._decoder_config = dict(decoder_config or {})
        self._worker: SphinxWorker | None = None
        self.last_decode_s: float | None = None

    async def start(self, frame: StartFrame):
        await super().start(frame)
        if self._worker is None:  # the worker starts and loads its decoder while the call connects
            self._worker = SphinxWorker(self._decoder_config)
            self._worker.warm()

    async def stop(self, frame: EndFrame):
        await super().stop(frame)
        self._close_worker()

    async def cancel(self, frame: CancelFrame):
        await super().cancel(frame)
        self._close_worker()

    @property
    def wants_wav_segments(self) -> bool:
        """Raw 16-bit PCM, which pocketsphinx reads directly."""
        return False

    def can_generate_metrics(self) -> bool:
        return True

    def language_to_service_language(self, language: Language) -> str | None:
        return "en-us" if str(language).startswith("en") else None

    async def _ensure_worker(self) -> SphinxWorker:
        if self._worker is None:
            self._worker = SphinxWorker(self._decoder_config)
            await asyncio.wrap_future(self._worker.warm())
        return self._worker

    def _close_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        """audio: one utterance, 16-bit mono PCM at 16 kHz. Yields a TranscriptionFrame when
        anything was recognised (nothing for noise), or an ErrorFrame."""
        await self.start_processing_metrics()
        try:
            worker = await self._ensure_worker()
            text, self.last_decode_s = await asyncio.wrap_future(worker.submit(audio))  # in order: one worker
        except Exception as e:  # a bad utterance must not end the conversation
            yield ErrorFrame(error=f"pocketsphinx failed: {e}")
            return
        finally:
            await self.stop_processing_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), Language.EN)
