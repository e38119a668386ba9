"""Decode any common audio, or the audio track of a video, to mono float32 PCM with PyAV."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from facecast.audio.pcm import Audio
from facecast.audio.resampling import resample
from facecast.errors import CorruptMedia, EmptyAudio, InvalidArgument, UnsupportedMedia

__all__ = ["load_audio", "resample"]

MIN_DURATION_S = 0.040  # 40 ms: one video frame at 25 fps
MIN_RATE_HZ = 8000  # lowest rate the AAC encoder takes
MAX_RATE_HZ = 96000  # highest rate the AAC encoder takes
FALLBACK_RATE_HZ = 48000  # used when a native rate is outside [MIN_RATE_HZ, MAX_RATE_HZ]

# Leading bytes of container formats that carry audio. A file that starts like one of these but
# does not decode is corrupt; a file that starts like none of them is not media we know.
_MAGIC_PREFIXES = (
    b"RIFF", b"RIFX", b"RF64", b"ID3", b"OggS", b"fLaC", b"FORM", b"\x1a\x45\xdf\xa3",
    b"#!AMR", b"MAC ", b"wvpk", b"\x30\x26\xb2\x75",
)
_MP4_BRAND_OFFSET = 4  # ISO-BMFF: box size (4 bytes) then b"ftyp"


def load_audio(source: str | Path | bytes, *, name: str | None = None) -> Audio:
    """Decode an audio file, an upload's bytes, or a video's audio track to mono PCM.

    source: a path, or the file's bytes (e.g. a server upload).
    name: how errors refer to the input (defaults to the path, or "<bytes>").
    Returns Audio with samples (N,) float32 in [-1, 1] at the native rate when that rate is in
    [8000, 96000] Hz, else resampled to 48000 Hz. Raises UnsupportedMedia, CorruptMedia, EmptyAudio.
    """
    label, head, opener = _open_source(source, name)
    try:
        container = opener()
    except av.error.FFmpegError as exc:
        raise _unreadable(label, head, exc) from None
    with container:
        samples, rate = _decode_first_audio_stream(container, label)
    return _finish(samples, rate, label)


def _open_source(source, name):
    """(label for errors, first 64 bytes of the input, zero-argument opener of the container)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<bytes>"
        if not data:
            raise EmptyAudio(f"{label}: the upload is empty (0 bytes)")
        return label, data[:64], lambda: av.open(io.BytesIO(data), mode="r")
    if not isinstance(source, (str, Path)):
        raise InvalidArgument(f"source: expected a path or bytes, got {type(source).__name__}")
    path = Path(source)
    label = name or str(path)
    if not path.is_file():
        raise InvalidArgument(f"source: no such audio file: {label}")
    if path.stat().st_size == 0:
        raise EmptyAudio(f"{label}: the file is empty (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(64)
    return label, head, lambda: av.open(str(path), mode="r")


def _looks_like_media(head: bytes) -> bool:
    """True when the leading bytes match a known audio/video container or an MPEG audio frame."""
    if head.startswith(_MAGIC_PREFIXES):
        return True
    if head[_MP4_BRAND_OFFSET:_MP4_BRAND_OFFSET + 4] == b"ftyp":
        return True
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # MPEG audio / ADTS sync
        return True
    return False


def _unreadable(label: str, head: bytes, exc: Exception) -> Exception:
    """Pick the user-facing error for a container FFmpeg could not open."""
    if _looks_like_media(head):
        reason = getattr(exc, "strerror", None) or str(exc)
        return CorruptMedia(f"{label}: looks like audio/video but cannot be decoded ({reason})")
    return UnsupportedMedia(f"{label}: not an audio or video file facecast can decode")


def _decode_first_audio_stream(container, label: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to (N,) float32 mono plus its sample rate in Hz."""
    if not container.streams.audio:
        raise UnsupportedMedia(f"{label}: contains no audio stream")
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
                chunks.append(_frame_to_mono(frame))
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CorruptMedia(f"{label}: audio stream cannot be decoded ({reason})") from None
    if errors and not chunks:
        raise CorruptMedia(f"{label}: every audio packet failed to decode")
    if not chunks:
        return np.zeros(0, np.float32), rate
    return np.concatenate(chunks), rate


def _frame_to_mono(frame) -> np.ndarray:
    """One decoded AudioFrame (any sample format/layout) -> (n,) float32, channels averaged."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        planes = data.reshape(channels, -1)
    else:
        planes = data.reshape(-1, channels).T
    planes = _to_float(planes, frame.format.name)
    return planes.mean(axis=0, dtype=np.float64).astype(np.float32)


def _to_float(planes: np.ndarray, fmt: str) -> np.ndarray:
    """Integer PCM -> float in [-1, 1); float stays. fmt: an FFmpeg sample format name."""
    if planes.dtype.kind == "f":
        return planes
    if fmt.startswith("u8"):
        return (planes.astype(np.float32) - 128.0) / 128.0
    scale = float(2 ** (8 * planes.dtype.itemsize - 1))
    return planes.astype(np.float32) / scale


def _finish(samples: np.ndarray, rate: int, label: str) -> Audio:
    """Validate length, bring the rate into the AAC range, clip to [-1, 1]."""
    if samples.size == 0 or rate <= 0:
        raise EmptyAudio(f"{label}: the audio stream has no samples")
    duration = samples.size / rate
    if duration < MIN_DURATION_S:
        raise EmptyAudio(
            f"{label}: audio is {duration * 1000:.1f} ms long, shorter than one video frame "
            f"({MIN_DURATION_S * 1000:.0f} ms)"
        )
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        samples, rate = resample(samples, rate, FALLBACK_RATE_HZ), FALLBACK_RATE_HZ
    samples = np.clip(np.nan_to_num(samples), -1.0, 1.0).astype(np.float32, copy=False)
    return Audio(samples=samples, sample_rate=int(rate))
