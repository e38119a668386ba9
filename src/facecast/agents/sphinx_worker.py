"""pocketsphinx in a worker process: its decoder holds the GIL while it decodes (1-2 s for a few
seconds of speech on a busy CPU), which would stall the event loop and the avatar's render threads.

Imports nothing but pocketsphinx, so a spawned worker starts in a fraction of a second.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

SAMPLE_RATE = 16_000  # Hz: the bundled en-us acoustic model's rate

_decoder = None  # the worker process's decoder


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


def _init(config: dict) -> None:
    global _decoder
    _decoder = load_decoder(**config)


def _transcribe(pcm: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    text = transcribe(_decoder, pcm)
    return text, time.perf_counter() - started


def _ready() -> bool:
    return _decoder is not None


class SphinxWorker:
    """One worker process with a loaded decoder. `submit(pcm)` -> a Future of (text, seconds the
    decode took);
    `warm()` -> a Future that is done once the decoder is loaded; `close()` (idempotent)."""

    def __init__(self, config: dict | None = None):
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init, initargs=(dict(config or {}),))

    def warm(self):
        return self._pool.submit(_ready)

    def submit(self, pcm: bytes):
        return self._pool.submit(_transcribe, pcm)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
