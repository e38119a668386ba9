"""Reading uploads within a size limit, and telling images and videos apart by their content."""

from __future__ import annotations

from fastapi import UploadFile

from facecast.errors import TooLarge, UnsupportedMedia
from facecast.media.probe import not_media, sniff

READ_CHUNK = 1024 * 1024  # bytes read from a spooled upload at a time


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
    """'image' or 'video' from the leading bytes (media.probe.sniff); UnsupportedMedia (415) else."""
    if not data:
        raise UnsupportedMedia(f"{label}: the upload is empty (0 bytes)")
    sniffed = sniff(data[:256])
    if sniffed.kind == "image":
        return "image"
    if sniffed.kind in ("video", "media"):
        return "video"
    if sniffed.kind == "audio":
        raise UnsupportedMedia(f"{label}: not an image or video: it is {sniffed.what}")
    raise not_media(label, sniffed.what, "an image or video (JPEG, PNG, WebP, BMP, TIFF, MP4, MOV, WebM, "
                    "MKV, AVI, GIF; the content decides, not the file name)")


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"
