"""Reading uploads within a size limit, and telling images and videos apart by their content."""

from __future__ import annotations

from fastapi import UploadFile

from facecast.errors import TooLarge, UnsupportedMedia
from facecast.media.reader import IMAGE_MAGIC

READ_CHUNK = 1024 * 1024  # bytes read from a spooled upload at a time

# Leading bytes of video containers (offset, magic).
_VIDEO_MAGIC = (
    (4, b"ftyp"),  # ISO BMFF: MP4, MOV, M4V, 3GP
    (0, b"\x1a\x45\xdf\xa3"),  # EBML: Matroska, WebM
    (0, b"GIF87a"), (0, b"GIF89a"),
    (0, b"OggS"), (0, b"FLV"),
    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"),  # MPEG program / elementary stream
)


async def read_upload(upload: UploadFile, limit: int, field: str) -> bytes:
    """The whole upload as bytes; TooLarge (413) past `limit` bytes, read in chunks."""
    parts, total = [], 0
    while chunk := await upload.read(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"{field}: the upload is larger than the limit of {_size(limit)} "
                           "(FACECAST_MAX_UPLOAD_MB)")
        parts.append(chunk)
    return b"".join(parts)


def sniff_visual(data: bytes, label: str) -> str:
    """'image' or 'video' from the leading bytes; UnsupportedMedia (415) for anything else."""
    if not data:
        raise UnsupportedMedia(f"{label}: the upload is empty (0 bytes)")
    if data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return "image"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video"
    if data[:1] == b"\x47" and len(data) > 188 and data[188:189] == b"\x47":  # MPEG-TS packets
        return "video"
    if any(data[off:off + len(magic)] == magic for off, magic in _VIDEO_MAGIC):
        return "video"
    raise UnsupportedMedia(f"{label}: not an image or video facecast can read (JPEG, PNG, WebP, BMP, TIFF, "
                           "MP4, MOV, WebM, MKV, AVI, GIF); the content decides, not the file name")


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"
