"""What a media file is, decided by its content: kind (image, video, audio), streams, orientation,
frame timing and duration. Every reader asks this module; nothing else sniffs bytes.

    sniff(head)            -> Sniffed(kind, format, what)  leading bytes only, no decoding
    probe(path_or_bytes)   -> MediaInfo                    opens the file (PIL header / PyAV)
    describe(head)         -> "text", "a PDF document", ... what non-media bytes look like
    not_media(label, what) -> UnsupportedMedia             "<label>: not an image or video: looks like text"
    aac_rate(rate)         -> nearest AAC sample rate (Hz), from the one table AAC_SAMPLE_RATES

Timing: a video's `frame_times` are the presentation times (s, from 0) of its frames in display
order, read from the packets without decoding. Readers (media.reader.video_frames) put frames on
a constant grid of `VideoStreamInfo.grid_fps`, each from its own time on, so a
variable-frame-rate clip keeps its timing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from facecast.errors import CorruptMedia, UnsupportedMedia

Kind = Literal["image", "video", "audio"]

# MPEG-4 sampling-frequency index table (ISO/IEC 14496-3), index order: what AAC encodes (Hz).
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

MAX_GRID_FPS = 60.0  # frames/s: a variable-rate video is put on a grid at most this fine
VFR_TOLERANCE = 0.10  # frame intervals differing by more than this share make a clip variable-rate

# (offset, magic, kind, format). Kind "media" = an audio/video container: its streams decide.
_MAGIC: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"\xff\xd8\xff", "image", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image", "png"),
    (0, b"BM", "image", "bmp"),
    (0, b"II*\x00", "image", "tiff"),
    (0, b"MM\x00*", "image", "tiff"),
    (4, b"ftyp", "media", "mp4"),  # ISO BMFF: MP4, MOV, M4A, 3GP
    (0, b"\x1a\x45\xdf\xa3", "media", "matroska"),  # Matroska, WebM
    (0, b"GIF87a", "video", "gif"), (0, b"GIF89a", "video", "gif"),
    (0, b"OggS", "media", "ogg"),
    (0, b"FLV", "media", "flv"),
    (0, b"\x00\x00\x01\xba", "media", "mpeg"), (0, b"\x00\x00\x01\xb3", "video", "mpegvideo"),
    (0, b"\x30\x26\xb2\x75", "media", "asf"),
    (0, b"RIFX", "audio", "wav"), (0, b"RF64", "audio", "wav"),
    (0, b"ID3", "audio", "mp3"), (0, b"fLaC", "audio", "flac"), (0, b"FORM", "audio", "aiff"),
    (0, b"#!AMR", "audio", "amr"), (0, b"MAC ", "audio", "ape"), (0, b"wvpk", "audio", "wavpack"),
)
_RIFF_FORMS = {b"WEBP": ("image", "webp"), b"AVI ": ("video", "avi"), b"WAVE": ("audio", "wav")}
_NOT_MEDIA = (  # (prefix, what it is): named in messages instead of a demuxer's guess
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"), (b"MZ", "a Windows program"), (b"<?xml", "XML text"),
    (b"<svg", "an SVG drawing (vector image; export it as PNG)"), (b"{", "JSON text"),
)
# FFmpeg demuxers that count as video containers (it also "opens" text files as ANSI art).
VIDEO_DEMUXERS = ("mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv", "mpeg", "ogg", "gif",
                  "h264", "hevc", "asf", "mpegvideo")


@dataclass(frozen=True)
class Sniffed:
    """What the leading bytes say. kind: "image" | "video" | "audio" | "media" (an audio/video
    container whose streams decide) | None (unknown); format: short name ("jpeg", "mp4", ...) or
    None; what: a phrase for messages ("a JPEG image", "text", ...)."""

    kind: str | None
    format: str | None
    what: str


@dataclass(frozen=True)
class ImageInfo:
    """A still image. size: (width, height) px as stored; bit_depth: bits per channel (8, 16, 32);
    orientation: EXIF Orientation 1..8 (1: shown as stored)."""

    format: str
    size: tuple[int, int]
    bit_depth: int
    orientation: int = 1

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) px once the EXIF orientation is applied."""
        w, h = self.size
        return (h, w) if self.orientation >= 5 else (w, h)


@dataclass(frozen=True)
class VideoStreamInfo:
    """The first video stream (not counting cover art).

    index: the stream's index in the container; codec: decoder name; size: (width, height) px
    as stored; rotation: degrees (0, 90, 180, 270) to turn the stored picture counter-clockwise
    for display (the display matrix's rotation; a phone's portrait clip has 270);
    frame_times: (N,) float64 s, presentation time of each frame from the first, display order;
    duration: s (last frame's end); average_fps: N / duration; variable_rate: frame intervals vary.
    """

    index: int
    codec: str
    size: tuple[int, int]
    rotation: int
    frame_times: np.ndarray
    duration: float
    average_fps: float
    variable_rate: bool

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) px once the rotation is applied."""
        w, h = self.size
        return (h, w) if self.rotation in (90, 270) else (w, h)

    @property
    def frame_count(self) -> int:
        return int(len(self.frame_times))

    @property
    def grid_fps(self) -> float:
        """Frame rate of the constant grid readers put frames on: the average rate for a
        constant-rate clip; for a variable-rate clip its fastest steady rate (capped at
        MAX_GRID_FPS), so no frame is lost and each is shown at its own time."""
        if not self.variable_rate:
            return self.average_fps
        steps = np.diff(self.frame_times)
        fastest = 1.0 / max(float(np.percentile(steps[steps > 0], 10)), 1e-6)
        return float(min(MAX_GRID_FPS, max(self.average_fps, round(fastest, 3))))

    @property
    def grid_count(self) -> int:
        """Number of frames on the grid: round(duration * grid_fps), at least 1."""
        return max(1, int(round(self.duration * self.grid_fps)))


@dataclass(frozen=True)
class AudioStreamInfo:
    """The first audio stream. sample_rate: Hz; channels: count; duration: s (0.0 when unknown)."""

    codec: str
    sample_rate: int
    channels: int
    duration: float


@dataclass(frozen=True)
class MediaInfo:
    """What a file is. kind: "image", "video" (has a video stream) or "audio" (audio only);
    format: container or image format ("jpeg", "mp4", "matroska", ...)."""

    label: str
    kind: Kind
    format: str
    image: ImageInfo | None = None
    video: VideoStreamInfo | None = None
    audio: AudioStreamInfo | None = None


def sniff(head: bytes) -> Sniffed:
    """Classify a file by its first bytes (64 are plenty; 200 let MPEG-TS be recognised)."""
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_FORMS:
        kind, fmt = _RIFF_FORMS[head[8:12]]
        return Sniffed(kind, fmt, _phrase(kind, fmt))
    for offset, magic, kind, fmt in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return Sniffed(kind, fmt, _phrase(kind, fmt))
    if head[:1] == b"\x47" and len(head) > 188 and head[188:189] == b"\x47":
        return Sniffed("media", "mpegts", _phrase("media", "mpegts"))
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # MPEG audio / ADTS sync
        return Sniffed("audio", "mp3", _phrase("audio", "mp3"))
    return Sniffed(None, None, describe(head))


def describe(head: bytes) -> str:
    """What non-media bytes look like, for messages: "empty", "text", "a PDF document", ..."""
    if not head:
        return "empty"
    stripped = head.lstrip()
    for prefix, what in _NOT_MEDIA:
        if stripped.startswith(prefix):
            return what
    if stripped[:1] == b"<":
        return "HTML or XML text"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of `head` is still text
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if text and all(c.isprintable() or c in "\r\n\t\f" for c in text):
        return "text"
    return "unknown binary data"


_NAMES = {  # format -> how messages name it, with its article
    "jpeg": "a JPEG", "png": "a PNG", "bmp": "a BMP", "tiff": "a TIFF", "webp": "a WebP", "gif": "a GIF",
    "mp4": "an MP4/MOV", "matroska": "a Matroska/WebM", "ogg": "an Ogg", "flv": "an FLV", "mpeg": "an MPEG",
    "mpegvideo": "an MPEG", "mpegts": "an MPEG-TS", "asf": "an ASF/WMV", "avi": "an AVI", "wav": "a WAV",
    "mp3": "an MP3", "flac": "a FLAC", "aiff": "an AIFF", "amr": "an AMR", "ape": "an APE", "wavpack": "a WavPack",
}


def _phrase(kind: str, fmt: str) -> str:
    noun = {"image": "image", "video": "video", "audio": "audio file", "media": "file"}[kind]
    return f"{_NAMES.get(fmt, 'a ' + fmt.upper())} {noun}"


def probe(source: str | Path | bytes, *, label: str | None = None,
          wanted: str = "an image, video or audio file") -> MediaInfo:
    """Open a file (a path or its bytes) and describe it.

    label: how messages name the input (default: the path, or "<bytes>"); wanted: what the
    caller needs, for the not-media message ("<label>: not <wanted>: looks like text").
    Raises UnsupportedMedia (missing, empty, not media: the message names what it looks like)
    or CorruptMedia (it starts like a known format but does not open), naming `label`.
    """
    data, path, label = _source(source, label)
    head = data[:256] if data is not None else _head(path)
    if not head:
        raise UnsupportedMedia(f"{label}: the file is empty (0 bytes)")
    sniffed = sniff(head)
    if sniffed.kind == "image":
        return MediaInfo(label, "image", sniffed.format, image=_probe_image(data, path, head, label, sniffed))
    return _probe_av(data, path, label, sniffed, wanted)


def open_container(source: str | Path | bytes):
    """A PyAV input container over a path or bytes (FFmpeg errors are the caller's to map)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return av.open(io.BytesIO(bytes(source)), mode="r")
    return av.open(str(source), mode="r")


def not_media(label: str, what: str, wanted: str = "an image or video") -> UnsupportedMedia:
    """The one message for content that is not the media a command needs."""
    return UnsupportedMedia(f"{label}: not {wanted}: looks like {what}")


def aac_rate(rate: int, max_rate: int = 96000) -> int:
    """The AAC sample rate (Hz, from AAC_SAMPLE_RATES, at least 8000, at most `max_rate`)
    nearest to `rate`."""
    return min((r for r in AAC_SAMPLE_RATES if 8000 <= r <= max_rate), key=lambda r: abs(r - rate))


def _source(source, label):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None, label or "<bytes>"
    path = Path(source)
    label = label or str(path)
    if path.is_dir():
        raise UnsupportedMedia(f"{label}: is a folder, not a file")
    if not path.is_file():
        raise UnsupportedMedia(f"{label}: no such file")
    return None, path, label


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(256)


def _probe_image(data, path, head: bytes, label: str, sniffed: Sniffed) -> ImageInfo:
    """Format, size, bits per channel (the PNG header's, else from PIL's mode), EXIF orientation."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # only the header is read: a huge picture is no danger here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else path)
        with img:
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            depth = head[24] if sniffed.format == "png" and head[12:16] == b"IHDR" else _bit_depth(img)
            return ImageInfo(sniffed.format, img.size, int(depth), orientation if 1 <= orientation <= 8 else 1)
    except Image.DecompressionBombError as exc:
        raise UnsupportedMedia(f"{label}: the image is too large to read ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptMedia(f"{label}: looks like {sniffed.what} but cannot be decoded "
                           f"(corrupt or truncated: {exc})") from None


def _bit_depth(img) -> int:
    """Bits per channel of a PIL image, from its mode."""
    if ";16" in img.mode:
        return 16
    return 32 if img.mode in ("I", "F") else 8


def _probe_av(data, path, label: str, sniffed: Sniffed, wanted: str) -> MediaInfo:
    try:
        container = open_container(data if data is not None else path)
    except av.error.FFmpegError as exc:
        if sniffed.kind is None:
            raise not_media(label, sniffed.what, wanted) from None
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CorruptMedia(f"{label}: looks like {sniffed.what} but cannot be decoded ({reason})") from None
    with container:
        fmt = sniffed.format or container.format.name.split(",")[0]
        video = [s for s in container.streams.video if not _is_cover_art(s)]
        if sniffed.kind is None and (not container.streams.audio or video) and \
                not any(n in VIDEO_DEMUXERS for n in container.format.name.split(",")):
            raise not_media(label, sniffed.what, wanted)
        audio = _audio_info(container.streams.audio[0]) if container.streams.audio else None
        if video:
            return MediaInfo(label, "video", fmt, video=_video_info(container, video[0], label), audio=audio)
        if audio is None:
            raise UnsupportedMedia(f"{label}: {sniffed.what if sniffed.kind else 'the file'} "
                                   "has neither a video nor an audio stream")
        return MediaInfo(label, "audio", fmt, audio=audio)


def _is_cover_art(stream) -> bool:
    """An embedded picture (album art in an MP3 or M4A) is not a video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _audio_info(stream) -> AudioStreamInfo:
    ctx = stream.codec_context
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    return AudioStreamInfo(ctx.name, int(ctx.sample_rate or 0), int(ctx.channels or 0), duration)


def _video_info(container, stream, label: str) -> VideoStreamInfo:
    """Codec from the stream; size and rotation (display matrix) from the first decoded frame;
    frame times from the packets, in the same single pass (one frame decoded)."""
    pts, last, first, error = [], 0.0, None, None
    try:
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                pts.append(packet.pts)
                last = float(packet.duration * packet.time_base) if packet.duration else last
            if first is None:
                first = next(iter(_decode(packet)), None)
        if first is None:
            first = next(iter(_decode(None, stream)), None)
    except av.error.FFmpegError as exc:  # a truncated file keeps the packets read so far
        error = exc
    if first is None:
        reason = f" ({error.strerror or error})" if error is not None else ""
        raise CorruptMedia(f"{label}: the video stream holds no decodable frame{reason}")
    rotation = int(round((getattr(first, "rotation", 0) or 0) / 90.0)) % 4 * 90  # older PyAV: no rotation
    times = np.sort(np.asarray(pts, np.float64)) * float(stream.time_base or 0)
    return _timing(stream, (first.width, first.height), rotation, times, last)


def _decode(packet, stream=None) -> list:
    """Frames of one packet (or, with packet None, the decoder's flush); none for a damaged one."""
    try:
        return packet.decode() if packet is not None else stream.codec_context.decode(None)
    except av.error.InvalidDataError:
        return []


def _timing(stream, size, rotation, times: np.ndarray, last: float) -> VideoStreamInfo:
    nominal = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 25)
    if len(times) < 2 or len(np.unique(times)) < len(times):  # no usable timestamps: nominal rate
        count = max(1, len(times) or int(stream.frames or 0) or 1)
        times = np.arange(count) / nominal
        return VideoStreamInfo(stream.index, stream.codec_context.name, size, rotation, times, count / nominal,
                               nominal, False)
    times = times - times[0]
    steps = np.diff(times)
    typical = float(np.median(steps))
    variable = bool(np.any(np.abs(steps - typical) > VFR_TOLERANCE * typical))
    if variable:
        duration = float(times[-1] + (last if last > 0 else typical))
        average = len(times) / duration
    else:  # constant rate: the mean step (timestamps may be rounded to the time base)
        average = (len(times) - 1) / float(times[-1])
        for rate in (stream.base_rate, stream.average_rate, stream.guessed_rate):
            if rate and abs(float(rate) / average - 1.0) < 0.003:
                average = float(rate)  # the container's exact rational rate (29.97 = 30000/1001)
                break
        duration = len(times) / average
    return VideoStreamInfo(stream.index, stream.codec_context.name, size, rotation, times, duration, average,
                           variable)

