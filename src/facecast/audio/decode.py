"""Decode any common audio, or the audio track of a video, to float32 PCM with PyAV: the mono mix
for analysis, and the stereo channels (when the input has two) for output files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from facecast.audio.pcm import Audio
from facecast.audio.resampling import resample
from facecast.errors import CorruptMedia, EmptyAudio, InvalidArgument, UnsupportedMedia
from facecast.media.probe import not_media, open_container, sniff

__all__ = ["load_audio", "resample"]

MIN_DURATION_S = 0.040  # 40 ms: one video frame at 25 fps
MIN_RATE_HZ = 8000  # lowest rate the AAC encoder takes
MAX_RATE_HZ = 96000  # highest rate the AAC encoder takes
FALLBACK_RATE_HZ = 48000  # used when a native rate is outside [MIN_RATE_HZ, MAX_RATE_HZ]

KEPT_CHANNELS = 2  # a stereo input keeps its channels for output; other layouts become the mono mix


def load_audio(source: str | Path | bytes, *, name: str | None = None) -> Audio:
    """Decode an audio file, an upload's bytes, or a video's audio track to mono PCM.

    source: a path, or the file's bytes (e.g. a server upload).
    name: how errors refer to the input (defaults to the path, or "<bytes>").
    Returns Audio with samples (N,) float32 in [-1, 1], the mono mix, at the native rate when that
    rate is in [8000, 96000] Hz, else resampled to 48000 Hz; a stereo input also keeps its
    channels (2, N) for output. Raises UnsupportedMedia, CorruptMedia, EmptyAudio.
    """
    label, head, opener = _open_source(source, name)
    try:
        container = opener()
    except av.error.FFmpegError as exc:
        raise _unreadable(label, head, exc) from None
    with container:
        if not container.streams.audio:
            raise _no_audio(label, head)
        planes, rate = _decode_first_audio_stream(container, label)
    return _finish(planes, rate, label)


def _open_source(source, name):
    """(label for errors, first 256 bytes of the input, zero-argument opener of the container)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<bytes>"
        if not data:
            raise EmptyAudio(f"{label}: the upload is empty (0 bytes)")
        return label, data[:256], lambda: open_container(data)
    if not isinstance(source, (str, Path)):
        raise InvalidArgument(f"source: expected a path or bytes, got {type(source).__name__}")
    path = Path(source)
    label = name or str(path)
    if not path.is_file():
        raise InvalidArgument(f"source: no such audio file: {label}")
    if path.stat().st_size == 0:
        raise EmptyAudio(f"{label}: the file is empty (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(256)
    return label, head, lambda: open_container(path)


def _unreadable(label: str, head: bytes, exc: Exception) -> Exception:
    """Pick the user-facing error for a container FFmpeg could not open (media.probe sniffs)."""
    sniffed = sniff(head)
    if sniffed.kind is None:
        return not_media(label, sniffed.what, "an audio or video file")
    if sniffed.kind == "image":
        return UnsupportedMedia(f"{label}: is {sniffed.what}, not an audio or video file")
    reason = getattr(exc, "strerror", None) or str(exc)
    return CorruptMedia(f"{label}: looks like {sniffed.what} but cannot be decoded ({reason})")


def _no_audio(label: str, head: bytes) -> Exception:
    """The error for a file FFmpeg opened but that has no audio stream."""
    sniffed = sniff(head)
    if sniffed.kind is None:  # FFmpeg "opens" text as ANSI art: say what it is instead
        return not_media(label, sniffed.what, "an audio or video file")
    return UnsupportedMedia(f"{label}: contains no audio stream")


def _decode_first_audio_stream(container, label: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to (C, N) float32 planes plus its sample rate in Hz."""
    stream = container.streams.audio[0]
    chunks: list[np.ndarray] = []
    rate = stream.codec_context.sample_rate or 0
    errors = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                errors += 1  # a damaged packet: skip it, like a player would
                continue
            for frame in frames:
                rate = frame.sample_rate
                chunks.append(_frame_planes(frame))
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CorruptMedia(f"{label}: audio stream cannot be decoded ({reason})") from None
    if errors and not chunks:
        raise CorruptMedia(f"{label}: every audio packet failed to decode")
    if not chunks:
        return np.zeros((1, 0), np.float32), rate
    if len({c.shape[0] for c in chunks}) > 1:  # the layout changed mid-stream: keep the mono mix
        chunks = [c.mean(axis=0, keepdims=True) for c in chunks]
    return np.concatenate(chunks, axis=1), rate


def _frame_planes(frame) -> np.ndarray:
    """One decoded AudioFrame (any sample format/layout) -> (C, n) float32: its channels when
    one or two, else (1, n), their mean."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        planes = data.reshape(channels, -1)
    else:
        planes = data.reshape(-1, channels).T
    planes = _to_float(planes, frame.format.name)
    if channels > KEPT_CHANNELS:
        return planes.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    return planes.astype(np.float32, copy=False)


def _to_float(planes: np.ndarray, fmt: str) -> np.ndarray:
    """Integer PCM -> float in [-1, 1); float stays. fmt: an FFmpeg sample format name."""
    if planes.dtype.kind == "f":
        return planes
    if fmt.startswith("u8"):
        return (planes.astype(np.float32) - 128.0) / 128.0
    scale = float(2 ** (8 * planes.dtype.itemsize - 1))
    return planes.astype(np.float32) / scale


def _finish(planes: np.ndarray, rate: int, label: str) -> Audio:
    """planes (C, N): validate length, bring the rate into the AAC range, clip to [-1, 1]; the mono
    mix for analysis, the channels kept for output when there are two."""
    if planes.shape[1] == 0 or rate <= 0:
        raise EmptyAudio(f"{label}: the audio stream has no samples")
    duration = planes.shape[1] / rate
    if duration < MIN_DURATION_S:
        raise EmptyAudio(
            f"{label}: audio is {duration * 1000:.1f} ms long, shorter than one video frame "
            f"({MIN_DURATION_S * 1000:.0f} ms)"
        )
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        planes, rate = np.stack([resample(p, rate, FALLBACK_RATE_HZ) for p in planes]), FALLBACK_RATE_HZ
    planes = np.clip(np.nan_to_num(planes), -1.0, 1.0).astype(np.float32, copy=False)
    mono = planes[0] if len(planes) == 1 else planes.mean(axis=0, dtype=np.float64).astype(np.float32)
    channels = np.ascontiguousarray(planes) if len(planes) == KEPT_CHANNELS else None
    return Audio(samples=np.ascontiguousarray(mono), sample_rate=int(rate), channels=channels)
