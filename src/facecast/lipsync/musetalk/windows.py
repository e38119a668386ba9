"""Which whisper frames condition which video frame (pure numpy; no torch).

Whisper's encoder yields 50 states per second (one per 20 ms). Video frame f takes the
WINDOW = 10 whisper frames centred on its own time span; at 25 fps that is whisper frames
2f-4 .. 2f+5. Frames before the start or after the end of the audio are zeros. Each whisper
frame contributes every encoder state (the embedding output and each layer: 5 for whisper-tiny),
so a frame's condition is (WINDOW * states, width) = (50, 384) for whisper-tiny.
"""

from __future__ import annotations

import math

import numpy as np

WHISPER_RATE = 16000  # Hz: whisper's input sample rate
WHISPER_FPS = 50  # encoder states per second of audio
SAMPLES_PER_STATE = WHISPER_RATE // WHISPER_FPS  # 320 samples = 20 ms
WINDOW = 10  # whisper frames per video frame
HALF_WINDOW = WINDOW // 2
RECEPTIVE_MARGIN = 2  # whisper frames: the convolutions' reach past a frame (3-tap conv, then stride 2)


def window_starts(frames: np.ndarray | int, fps: float) -> np.ndarray:
    """First whisper frame of each video frame's window: floor((f + 0.5) * 50 / fps) - 5.

    frames: (N,) int video frame numbers (or a count N, meaning 0..N-1) -> (N,) int64.
    At 25 fps this is 2f - 4.
    """
    f = np.arange(frames) if np.isscalar(frames) else np.asarray(frames)
    return np.floor((f.astype(np.float64) + 0.5) * WHISPER_FPS / fps).astype(np.int64) - HALF_WINDOW


def gather_windows(states: np.ndarray, starts: np.ndarray, offset: int = 0) -> np.ndarray:
    """Cut each frame's window out of a run of encoder states, zeros outside it.

    states: (T, S, D) float, the states of whisper frames offset .. offset+T-1
    starts: (N,) int, absolute first whisper frame of each window (window_starts)
    returns: (N, WINDOW * S, D) of states.dtype, ordered whisper frame first, then state
    """
    t, s, d = states.shape
    index = starts[:, None] - offset + np.arange(WINDOW)[None, :]  # (N, WINDOW)
    valid = (index >= 0) & (index < t)
    out = np.zeros((len(starts), WINDOW, s, d), states.dtype)
    out[valid] = states[index[valid]]
    return out.reshape(len(starts), WINDOW * s, d)


def state_count(n_samples: int) -> int:
    """Whisper frames that hold audio for n_samples at 16 kHz: ceil(n / 320)."""
    return int(math.ceil(n_samples / SAMPLES_PER_STATE))


def samples_needed(frame: int, fps: float) -> int:
    """16 kHz samples that must have arrived before video frame `frame` is final.

    The frame's last whisper frame (start + 9) plus the convolutions' reach must lie in
    received audio: (start + WINDOW + RECEPTIVE_MARGIN) * 320 samples. At 25 fps that is
    640 f + 2560 samples: the frame's end + 120 ms of lookahead.
    """
    last = int(window_starts(np.array([frame]), fps)[0]) + WINDOW + RECEPTIVE_MARGIN
    return max(0, last * SAMPLES_PER_STATE)


def sinusoidal_encoding(length: int, width: int) -> np.ndarray:
    """Transformer position code added to a frame's condition: (length, width) float32.

    Even columns sin(p / 10000^(i/width)), odd columns cos of the same (i the even column index).
    """
    if width % 2:
        raise ValueError(f"width={width} must be even for a sinusoidal encoding")
    position = np.arange(length, dtype=np.float64)[:, None]
    rate = np.exp(np.arange(0, width, 2, dtype=np.float64) * (-math.log(10000.0) / width))[None, :]
    code = np.zeros((length, width), np.float64)
    code[:, 0::2] = np.sin(position * rate)
    code[:, 1::2] = np.cos(position * rate)
    return code.astype(np.float32)
