"""Short-time speech features at 16 kHz with 10 ms hops: two band levels and two formants.

Everything here is a pure function of a block of samples, so the offline and the streaming mouth
trackers (audio/mouth.py) share it. Hop k is centred on sample k * HOP of the analysed signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANALYSIS_RATE = 16000  # Hz
HOP = 160  # samples: 10 ms
WIN = 400  # samples: 25 ms Hann window
NFFT = 512
HOP_S = HOP / ANALYSIS_RATE  # 0.010 s

# Bands (Hz). Speech band: voice activity. Articulation band: where an open mouth radiates
# (F2/F3, the lip-radiation boost); a closed mouth (nasal murmur, voiced closure) leaves it empty.
SPEECH_BAND = (100.0, 4000.0)
ARTICULATION_BAND = (1500.0, 5000.0)

LPC_RATE = 8000  # Hz: formants below 4 kHz are found on the 0..4 kHz half of the spectrum
LPC_ORDER = 10  # two poles per kHz plus two, the usual rule of thumb
PRE_EMPHASIS = 0.7
RESONANCE_RANGE_HZ = (200.0, 3500.0)  # candidate resonances
MAX_BANDWIDTH_HZ = 500.0  # wider poles are spectral tilt, not formants
LEVEL_FLOOR_DB = -100.0  # dBFS given to digital silence


@dataclass(frozen=True)
class HopFeatures:
    """Per-hop features, each (T,) float64. Levels in dBFS (full-scale sine = -3 dB), F1 in Hz."""

    speech_db: np.ndarray
    articulation_db: np.ndarray
    f1_hz: np.ndarray  # lowest resonance (F1 in voiced speech); 0 where none was found
    f2_hz: np.ndarray  # next resonance up (F2 in voiced speech); 0 where none was found

    def __len__(self) -> int:
        return len(self.speech_db)

    @staticmethod
    def concat(parts: list[HopFeatures]) -> HopFeatures:
        """Hops of several blocks, in order."""
        return HopFeatures(*(np.concatenate([getattr(p, n) for p in parts]) for n in _FIELDS))

    def select(self, index: slice | np.ndarray) -> HopFeatures:
        """The hops picked by a slice or a (T,) bool mask."""
        return HopFeatures(*(getattr(self, n)[index] for n in _FIELDS))


_FIELDS = ("speech_db", "articulation_db", "f1_hz", "f2_hz")


def hop_features(frames: np.ndarray) -> HopFeatures:
    """Features of windows cut from a 16 kHz signal: frames (T, WIN) float -> HopFeatures."""
    power = power_spectrum(frames)
    f1, f2 = formants(power).T
    return HopFeatures(
        speech_db=band_level_db(power, *SPEECH_BAND),
        articulation_db=band_level_db(power, *ARTICULATION_BAND),
        f1_hz=f1,
        f2_hz=f2,
    )


def frame_signal(x: np.ndarray, n_hops: int) -> np.ndarray:
    """Cut n_hops windows from x (16 kHz), window k starting at sample k * HOP: (n_hops, WIN) view.

    The caller pads x so that window k is centred where it wants hop k to be.
    """
    need = (n_hops - 1) * HOP + WIN
    if len(x) < need:
        x = np.pad(x, (0, need - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:n_hops]


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """Hann-windowed power spectra: (T, WIN) -> (T, NFFT // 2 + 1); a full-scale sine is -3 dB."""
    window = np.hanning(WIN)
    spectrum = np.fft.rfft(frames * window, NFFT)
    return (np.abs(spectrum) ** 2) * (2.0 / (window.sum() ** 2))


def band_level_db(power: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Total power between lo_hz and hi_hz of each spectrum, in dB: (T, F) -> (T,)."""
    freqs = np.fft.rfftfreq(NFFT, 1.0 / ANALYSIS_RATE)
    band = power[:, (freqs >= lo_hz) & (freqs < hi_hz)].sum(axis=1)
    return np.maximum(10.0 * np.log10(band + 1e-12), LEVEL_FLOOR_DB)


def formants(power: np.ndarray) -> np.ndarray:
    """Two lowest resonances (Hz) of an LPC fit of each spectrum's 0..4 kHz half.

    power: (T, F) from power_spectrum. Returns (T, 2) [F1, F2]; 0 where a resonance is missing.
    In unvoiced sounds (fricatives, breath) the "F1" found is the lowest noise resonance, high.
    """
    autocorr = _autocorrelation_8k(power)
    coeffs, ok = _levinson(autocorr, LPC_ORDER)
    out = np.zeros((len(power), 2))
    if ok.any():
        out[ok] = _lowest_resonances(coeffs[ok])
    return out


def _autocorrelation_8k(power: np.ndarray) -> np.ndarray:
    """Pre-emphasised autocorrelation (lags 0..LPC_ORDER at 8 kHz) from 16 kHz power spectra."""
    n_half = NFFT // 4 + 1  # bins 0..4 kHz: the half-spectrum of an NFFT/2-point FFT at 8 kHz
    omega = np.linspace(0.0, np.pi, n_half)
    emphasis = 1.0 + PRE_EMPHASIS**2 - 2.0 * PRE_EMPHASIS * np.cos(omega)
    r = np.fft.irfft(power[:, :n_half] * emphasis, n=NFFT // 2, axis=1)
    return r[:, : LPC_ORDER + 1]


def _levinson(r: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Levinson-Durbin on many frames: r (T, order+1) -> (a (T, order+1), a0 = 1; ok (T,) bool)."""
    n = len(r)
    a = np.zeros((n, order + 1))
    a[:, 0] = 1.0
    err = r[:, 0] * (1.0 + 1e-9) + 1e-20  # white-noise correction keeps the system well posed
    ok = r[:, 0] > 1e-10
    for i in range(1, order + 1):
        acc = r[:, i] + np.einsum("tj,tj->t", a[:, 1:i], r[:, i - 1 : 0 : -1])
        k = -acc / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        err = err * (1.0 - k**2)
        ok &= err > 0
    return a, ok


def _lowest_resonances(a: np.ndarray) -> np.ndarray:
    """Two lowest narrow resonances of each LPC polynomial: a (T, p+1) -> (T, 2) Hz, 0 if none."""
    p = a.shape[1] - 1
    companion = np.zeros((len(a), p, p))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    freq = np.angle(roots) * LPC_RATE / (2.0 * np.pi)
    bandwidth = -np.log(np.maximum(np.abs(roots), 1e-12)) * LPC_RATE / np.pi
    lo, hi = RESONANCE_RANGE_HZ
    valid = (roots.imag > 0) & (freq >= lo) & (freq <= hi) & (bandwidth < MAX_BANDWIDTH_HZ)
    lowest = np.sort(np.where(valid, freq, np.inf), axis=1)[:, :2]
    return np.where(np.isfinite(lowest), lowest, 0.0)
