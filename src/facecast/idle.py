"""Idle life for still avatars: eye blinks every few seconds and a slight head sway.

Motion is a pure function of the output frame number and a seed, so batches rendered
separately (streaming) join seamlessly.
"""

from __future__ import annotations

import numpy as np

BLINK_CLOSE_S = 0.07  # s: lids closing
BLINK_HOLD_S = 0.04  # s: lids closed
BLINK_OPEN_S = 0.12  # s: lids opening
BLINK_INTERVAL_S = (2.5, 5.5)  # s: gap between blinks, uniform
FIRST_BLINK_S = (0.8, 2.0)  # s: time of the first blink
SWAY_ROLL_DEG = 1.2  # degrees: peak head roll
SWAY_SHIFT = 0.010  # face units: peak head translation
IDLE_COLUMNS = 4  # blink, roll_deg, shift_a, shift_b


def idle_motion(frames: np.ndarray, fps: float, seed: int = 0) -> np.ndarray:
    """Idle motion of output frames.

    frames: (B,) int output frame numbers
    returns: (B, 4) float32 columns [blink 0..1 (1 = closed), roll in degrees,
             shift across, shift down (face units)]
    """
    t = np.asarray(frames, np.float64) / fps
    out = np.zeros((len(t), IDLE_COLUMNS), np.float32)
    out[:, 0] = blink_amount(t, seed)
    phases = np.random.default_rng(seed + 7919).uniform(0, 2 * np.pi, 4)
    out[:, 1] = SWAY_ROLL_DEG * (0.7 * np.sin(2 * np.pi * 0.13 * t + phases[0])
                                 + 0.3 * np.sin(2 * np.pi * 0.31 * t + phases[1]))
    out[:, 2] = SWAY_SHIFT * np.sin(2 * np.pi * 0.09 * t + phases[2])
    out[:, 3] = 0.6 * SWAY_SHIFT * np.sin(2 * np.pi * 0.17 * t + phases[3])
    return out


def blink_times(until: float, seed: int) -> np.ndarray:
    """Start times (s) of every blink before `until` seconds."""
    rng = np.random.default_rng(seed)
    times = [rng.uniform(*FIRST_BLINK_S)]
    while times[-1] < until:
        times.append(times[-1] + rng.uniform(*BLINK_INTERVAL_S))
    return np.asarray(times)


def blink_amount(t: np.ndarray, seed: int) -> np.ndarray:
    """Lid closure in [0, 1] at times t (s), (B,) -> (B,) float64."""
    if len(t) == 0:
        return np.zeros(0)
    starts = blink_times(float(t.max()) + 1.0, seed)
    idx = np.searchsorted(starts, t, side="right") - 1
    since = np.where(idx >= 0, t - starts[np.maximum(idx, 0)], np.inf)
    closing = np.clip(since / BLINK_CLOSE_S, 0, 1)
    opening = 1 - np.clip((since - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S, 0, 1)
    amount = np.minimum(closing, opening)
    return np.where(np.isfinite(since), amount, 0.0)
