"""The One-Euro filter: little jitter at rest, little lag on fast moves."""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with `cutoff_hz` at time step `dt_s`."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """Speed-adaptive low-pass filter of an array signal, element by element (Casiez et al., CHI 2012).

    min_cutoff_hz: cutoff at rest; lower removes more jitter.
    beta: cutoff increase per (signal unit / s) of speed; higher means less lag on fast moves.
    Both may be arrays that broadcast against the signal (one setting per element).
    d_cutoff_hz: cutoff of the speed estimate.
    Signals of any shape; timestamps in seconds, increasing.
    """

    def __init__(self, min_cutoff_hz: float | np.ndarray = 1.0, beta: float | np.ndarray = 0.0,
                 d_cutoff_hz: float = 1.0):
        if np.any(np.asarray(min_cutoff_hz) <= 0) or d_cutoff_hz <= 0 or np.any(np.asarray(beta) < 0):
            raise ValueError(f"OneEuroFilter: cutoffs must be > 0 and beta >= 0, got "
                             f"min_cutoff_hz={min_cutoff_hz!r}, d_cutoff_hz={d_cutoff_hz!r}, beta={beta!r}")
        self.min_cutoff_hz, self.beta = np.asarray(min_cutoff_hz, np.float64), np.asarray(beta, np.float64)
        self.d_cutoff_hz = d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter sample `x` (any shape, float) taken at time `t_s` seconds; returns float64, same shape."""
        x = np.asarray(x, np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t
        if dt <= 0:
            dt = 1e-3  # repeated or out-of-order timestamps: treat as a tiny step
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff_hz, dt) * (dx - self._dx)
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = t_s
        return self._x.copy()
