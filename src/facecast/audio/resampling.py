"""Sample-rate conversion of whole buffers and live streams, with libswresample (PyAV)."""

from __future__ import annotations

import av
import numpy as np

from facecast.errors import InvalidArgument


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a whole buffer with libswresample: samples (N,) float -> (ceil(N * to_rate / from_rate),) float32.

    (scipy.signal would do too, but importing it costs half a second of start-up.)
    """
    _check_rate("from_rate", from_rate)
    _check_rate("to_rate", to_rate)
    samples = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate or samples.size == 0:
        return samples.copy()
    stream = StreamResampler(from_rate, to_rate)
    out = np.concatenate([stream.push(samples), stream.flush()])
    want = -(-samples.size * int(to_rate) // int(from_rate))
    if out.size < want:
        out = np.pad(out, (0, want - out.size))
    return out[:want].astype(np.float32, copy=False)


class StreamResampler:
    """Resample a live mono stream chunk by chunk; the output is continuous across chunks."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        _check_rate("from_rate", from_rate)
        _check_rate("to_rate", to_rate)
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        self._swr = self._new()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """samples (n,) float at from_rate -> (m,) float32 at to_rate (lags a few samples)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._swr is None or samples.size == 0:
            return samples.copy()
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = self.from_rate
        return self._collect(self._swr.resample(frame))

    def flush(self) -> np.ndarray:
        """Drain the filter's delay line: (m,) float32."""
        if self._swr is None:
            return np.zeros(0, np.float32)
        out = self._collect(self._swr.resample(None))
        self._swr = self._new()
        return out

    def reset(self) -> None:
        self._swr = self._new()

    def _new(self):
        if self.from_rate == self.to_rate:
            return None
        return av.AudioResampler(format="flt", layout="mono", rate=self.to_rate)

    @staticmethod
    def _collect(frames) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1) for f in frames]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InvalidArgument(f"{name}: sample rate must be a positive integer in Hz, got {rate!r}")
