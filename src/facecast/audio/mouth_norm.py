"""Per-utterance normalisation of the mouth tracker: noise floor, voice activity, level ranges.

Everything is a robust statistic of the hops (percentiles, a floor from the quietest hops), so
loud and quiet, clean and noisy recordings give the same range of mouth motion. A live stream fits
the same statistics on its recent history; with little speech seen so far they lean on priors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecast.audio import features as ft

OPEN_RANGE_DB = 30.0  # articulation levels from peak - 30 dB (0) to peak (1)
F1_CLOSED_HZ = 250.0  # F1 of close vowels
F1_OPEN_HZ = 850.0  # F1 of open vowels
PEAK_PERCENTILE = 97.0  # robust "loudest" level of an utterance
FLOOR_HOPS = 20  # noise floor: the level under which the quietest 200 ms (in all) lie ...
FLOOR_FRACTION = 0.05  # ... or the quietest 5 % of a history shorter than 4 s
VAD_SNR_DB = 9.0  # speech is at least this far above the noise floor ...
VAD_RANGE_DB = 35.0  # ... and no further than this below the peak
VAD_MIN_LEVEL_DB = -70.0  # dBFS: anything quieter is never speech
MIN_SPEECH_PEAK_DB = -50.0  # dBFS: input whose loudest hops stay below this is all silence
F2_MIN_SCALE_HZ = 100.0  # lower bound of the F2 z-score's scale
F2_PRIOR = (1500.0, 300.0)  # F2 centre and scale (Hz), a prior for few vowels heard
VOWEL_F1_MAX_HZ = 1000.0  # hops with a lower first resonance are vowel-like (F2 is meaningful)
MIN_VOWEL_HOPS = 10
MIN_SPEECH_HOPS = 5  # 50 ms: less candidate speech than this is no speech at all
OPEN_REF_PERCENTILE = 95.0  # this percentile of the raw opening over speech maps to open = 1
MIN_OPEN_REF = 0.25  # caps that gain at 4x, for speakers who barely open (or near-silence)
# Priors for short histories (a live stream's first second), typical of the test speech:
PRIOR_HOPS = 50  # a prior counts as much as 0.5 s of speech
PRIOR_ARTICULATION_BELOW_PEAK_DB = 11.0  # articulation-band peak vs speech-band peak
PRIOR_OPEN_REF = 0.7


@dataclass(frozen=True)
class Normaliser:
    """Per-utterance levels that make the mouth independent of recording level and noise."""

    vad_threshold_db: float
    articulation_peak_db: float
    open_ref: float  # raw opening that maps to open = 1
    f2_center_hz: float  # this speaker's typical F2: neutral width
    f2_scale_hz: float

    @classmethod
    def fit(cls, feats: ft.HopFeatures, floor_db: float | None = None) -> Normaliser:
        """Robust statistics of an utterance's hops (or of a live stream's recent history).

        floor_db: the noise floor of the speech band, if the caller tracks it (live streams).
        """
        floor = noise_floor(feats.speech_db) if floor_db is None else floor_db
        lowest = max(floor + VAD_SNR_DB, VAD_MIN_LEVEL_DB)
        candidates = feats.speech_db > lowest
        peak = -np.inf
        if candidates.any():
            peak = np.percentile(feats.speech_db[candidates], PEAK_PERCENTILE)
        if candidates.sum() < MIN_SPEECH_HOPS or peak < MIN_SPEECH_PEAK_DB:
            return cls(np.inf, 0.0, 1.0, *F2_PRIOR)  # no speech (yet)
        threshold = max(lowest, peak - VAD_RANGE_DB)
        speech = feats.speech_db > threshold
        trust = speech.sum() / (speech.sum() + PRIOR_HOPS)  # little speech so far: lean on priors
        articulation_peak = _shrink(
            np.percentile(feats.articulation_db[speech], PEAK_PERCENTILE),
            peak - PRIOR_ARTICULATION_BELOW_PEAK_DB, trust)
        level, jaw = level_and_jaw(feats.select(speech), articulation_peak)
        opening = level * jaw
        open_ref = _shrink(np.percentile(opening, OPEN_REF_PERCENTILE), PRIOR_OPEN_REF, trust)
        open_ref = max(open_ref, MIN_OPEN_REF)
        vowel_like = speech & (feats.f2_hz > 0) & (feats.f1_hz < VOWEL_F1_MAX_HZ)
        center, scale = _robust_center_scale(feats.f2_hz[vowel_like])
        return cls(float(threshold), float(articulation_peak), float(open_ref), center, scale)


def noise_floor(level_db: np.ndarray) -> float:
    """Level (dB) under which the quietest FLOOR_HOPS (or 5 %) of the hops lie.

    Any speech recording pauses that long in all; a short history gives its quietest hops.
    """
    k = min(FLOOR_HOPS, int(FLOOR_FRACTION * len(level_db)))
    return float(np.partition(level_db, k)[k])


def _shrink(estimate: float, prior: float, trust: float) -> float:
    """Blend an estimate with its prior; trust in [0, 1] grows with the amount of speech seen."""
    return trust * estimate + (1.0 - trust) * prior


def _robust_center_scale(f2_hz: np.ndarray) -> tuple[float, float]:
    """Median and IQR-based sigma (Hz) of F2 over vowel-like speech hops, shrunk to F2_PRIOR."""
    if f2_hz.size < MIN_VOWEL_HOPS:
        return F2_PRIOR
    q25, median, q75 = np.percentile(f2_hz, [25, 50, 75])
    trust = f2_hz.size / (f2_hz.size + PRIOR_HOPS)
    center = _shrink(median, F2_PRIOR[0], trust)
    scale = _shrink(max((q75 - q25) / 1.349, F2_MIN_SCALE_HZ), F2_PRIOR[1], trust)
    return float(center), float(scale)


def level_and_jaw(
    feats: ft.HopFeatures, articulation_peak_db: float
) -> tuple[np.ndarray, np.ndarray]:
    """(T,) articulation level and (T,) jaw opening, both 0..1, before voice gating."""
    return _level(feats.articulation_db, articulation_peak_db), _jaw(feats.f1_hz)


def _level(articulation_db: np.ndarray, peak_db: float) -> np.ndarray:
    """Articulation-band level mapped over the top OPEN_RANGE_DB below the peak to 0..1."""
    return np.clip(1.0 - (peak_db - articulation_db) / OPEN_RANGE_DB, 0.0, 1.0)


def _jaw(f1_hz: np.ndarray) -> np.ndarray:
    """Jaw opening implied by the lowest resonance: F1_CLOSED_HZ -> 0, F1_OPEN_HZ and up -> 1."""
    return np.clip((f1_hz - F1_CLOSED_HZ) / (F1_OPEN_HZ - F1_CLOSED_HZ), 0.0, 1.0)
