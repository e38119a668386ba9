"""Speech windows for training: the users' speech files plus offline text-to-speech sentences in
several languages, turned into the UNet's conditions by the backend's whisper path.

A window is one video frame's condition at 25 fps: (50, width) whisper states (windows.py), kept
as float16 to halve the memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from facecast.errors import InvalidArgument
from facecast.lipsync.musetalk.windows import WHISPER_RATE, gather_windows, window_starts

FPS = 25  # video frames per second the windows are cut for (the backend's default)

# a few everyday sentences per espeak-ng language; a voice without its own list speaks English
SENTENCES = {
    "en": ["The quick brown fox jumps over the lazy dog, and then it runs away.",
           "Could you tell me the way to the station? I think I am lost.",
           "We will meet at nine o'clock tomorrow morning to talk about the plan."],
    "de": ["Guten Morgen, heute scheint die Sonne und der Himmel ist blau.",
           "Können Sie mir bitte sagen, wo der Bahnhof ist?",
           "Wir treffen uns morgen um neun Uhr, um den Plan zu besprechen."],
    "fr": ["Bonjour, il fait beau aujourd'hui et le ciel est bleu.",
           "Pouvez-vous me dire où se trouve la gare, s'il vous plaît?",
           "Nous nous retrouverons demain matin à neuf heures pour parler du projet."],
    "es": ["Buenos días, hoy hace sol y el cielo está despejado.",
           "¿Me puede decir dónde está la estación, por favor?",
           "Nos vemos mañana a las nueve para hablar del plan."],
    "it": ["Buongiorno, oggi c'è il sole e il cielo è sereno.",
           "Mi può dire dov'è la stazione, per favore?",
           "Ci vediamo domani alle nove per parlare del progetto."],
    "pt": ["Bom dia, hoje está sol e o céu está azul.",
           "Pode dizer-me onde fica a estação, por favor?",
           "Encontramo-nos amanhã às nove para falar do plano."],
    "nl": ["Goedemorgen, vandaag schijnt de zon en de lucht is blauw.",
           "Kunt u mij vertellen waar het station is?",
           "We zien elkaar morgen om negen uur om het plan te bespreken."],
    "pl": ["Dzień dobry, dzisiaj świeci słońce i niebo jest niebieskie.",
           "Czy może mi pan powiedzieć, gdzie jest dworzec?",
           "Spotkamy się jutro o dziewiątej, żeby omówić plan."],
}


@dataclass
class SpeechPool:
    """windows (N, 50, width) float16; sources (N,) int64 index into names (one per clip or sentence)."""

    windows: np.ndarray
    sources: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.windows)

    @classmethod
    def from_windows(cls, windows: np.ndarray, sources: np.ndarray | None = None) -> "SpeechPool":
        """A pool from ready windows (N, 50, width) float (e.g. a backend's audio_features)."""
        windows = np.asarray(windows)
        if windows.ndim != 3 or not len(windows):
            raise InvalidArgument(f"windows: expected (N, 50, width) with N >= 1, got {windows.shape}")
        src = np.zeros(len(windows), np.int64) if sources is None else np.asarray(sources, np.int64)
        return cls(windows.astype(np.float16), src, [f"windows[{i}]" for i in range(int(src.max()) + 1)])


def tts_lines(count: int, voices: Sequence[str]) -> list[tuple[str, str]]:
    """(voice, sentence) pairs: sentence i in voice i mod len(voices), each voice's sentences in turn."""
    out = []
    for i in range(count):
        voice = voices[i % len(voices)]
        lines = SENTENCES.get(voice.split("-")[0].split("+")[0].lower(), SENTENCES["en"])
        out.append((voice, lines[(i // len(voices)) % len(lines)]))
    return out


def speech_clips(audio_files: Sequence[Path], tts_count: int, voices: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """(name, samples (N,) float32 at 16 kHz) of every speech file, then of the TTS sentences.
    Raises the decoder's one-line errors for unreadable files, InvalidArgument for an unknown voice."""
    from facecast.audio.decode import load_audio
    from facecast.audio.resampling import resample
    from facecast.audio.tts import synthesize

    clips = []
    for path in audio_files:
        audio = load_audio(Path(path))
        clips.append((Path(path).name, resample(audio.samples, audio.sample_rate, WHISPER_RATE)))
    for voice, text in tts_lines(tts_count, voices):
        audio = synthesize(text, voice).audio
        clips.append((f"tts:{voice}:{text[:24]}", resample(audio.samples, audio.sample_rate, WHISPER_RATE)))
    return clips


def build_speech(whisper, audio_files: Sequence[Path], tts_count: int, voices: Sequence[str],
                 max_windows: int) -> SpeechPool:
    """The windows of every clip (whisper: the teacher's WhisperStates), at most `max_windows` in all
    (each clip's share cut evenly). InvalidArgument when there is no speech at all."""
    clips = speech_clips(audio_files, tts_count, voices)
    if not clips:
        raise InvalidArgument("no speech: give --audio FILE (repeatable) and/or --tts-sentences N > 0")
    counts = [max(1, int(round(len(samples) * FPS / WHISPER_RATE))) for _, samples in clips]
    keep = counts if sum(counts) <= max_windows else [max(1, c * max_windows // sum(counts)) for c in counts]
    parts, sources = [], []
    for i, ((_, samples), count, k) in enumerate(zip(clips, counts, keep)):
        states = whisper.clip_states(samples)
        frames = np.unique(np.linspace(0, count - 1, k).round().astype(np.int64))
        parts.append(gather_windows(states, window_starts(frames, FPS)).astype(np.float16))
        sources.append(np.full(len(frames), i, np.int64))
    return SpeechPool(np.concatenate(parts), np.concatenate(sources), [name for name, _ in clips])
