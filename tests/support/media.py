"""Synthetic media for the probe and reader tests: phone-like JPEGs with an EXIF orientation,
rotated and variable-frame-rate MP4s, dim 16-bit PNGs, mono and stereo WAVs. Nothing is downloaded."""

from __future__ import annotations

import io
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112  # EXIF Orientation


def marker_image(width: int = 64, height: int = 40) -> np.ndarray:
    """(height, width, 3) uint8 BGR: grey, with a red top-left, green top-right and blue
    bottom-left corner block, so every flip and turn is told apart."""
    img = np.full((height, width, 3), 128, np.uint8)
    b = max(4, min(width, height) // 4)
    img[:b, :b] = (0, 0, 255)
    img[:b, -b:] = (0, 255, 0)
    img[-b:, :b] = (255, 0, 0)
    return img


def jpeg_with_orientation(path: Path, stored_bgr: np.ndarray, orientation: int) -> Path:
    """Write `stored_bgr` as a JPEG whose EXIF Orientation is `orientation` (1..8)."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    Image.fromarray(stored_bgr[:, :, ::-1]).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def shown_by_pil(path: Path) -> np.ndarray:
    """How PIL shows the file once EXIF orientation is applied: (H, W, 3) uint8 BGR."""
    from PIL import ImageOps

    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))[:, :, ::-1]


def write_video(path: Path, frames: list[np.ndarray], times_s: list[float], *, rotation: int = 0,
                time_base: Fraction = Fraction(1, 1000), stereo_audio: bool = False) -> Path:
    """Encode (H, W, 3) uint8 BGR frames as H.264 MP4, frame i shown at times_s[i] (explicit pts,
    so the rate may vary); `rotation`: display matrix, degrees counter-clockwise."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"preset": "ultrafast", "crf": "18"}
        if rotation:
            stream.set_display_rotation(rotation)
        for img, t in zip(frames, times_s):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def counter_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """n <= 64 frames whose index is written in six black/white stripes (bit 5 on the left), so a
    decoded frame tells which source frame it is."""
    assert n <= 64 and width % 8 == 0
    frames = []
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        for bit in range(6):
            if i >> (5 - bit) & 1:
                img[:, (bit + 1) * width // 8: (bit + 2) * width // 8] = 255
        frames.append(img)
    return frames


def frame_index(img: np.ndarray) -> int:
    """The index counter_frames wrote into a decoded (h, w, 3) frame (stripes read at their centres)."""
    h, w = img.shape[:2]
    bits = [img[h // 2, (bit + 1) * w // 8 + w // 16].mean() > 128 for bit in range(6)]
    return sum(int(b) << (5 - k) for k, b in enumerate(bits))


def vfr_times() -> list[float]:
    """2 s at 5 fps, then 2 s at 25 fps: 10 + 50 frame times in s."""
    return [i / 5 for i in range(10)] + [2.0 + i / 25 for i in range(50)]


def dim_png16(path: Path, level: int = 6000) -> Path:
    """A dim 16-bit greyscale-looking BGR PNG: every sample `level` of 65535."""
    img = np.full((48, 64, 3), level, np.uint16)
    img[10:20, 10:20] = level // 2
    assert cv2.imwrite(str(path), img)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """A 16-bit PCM WAV of `samples`: (N,) mono or (N, C) float in [-1, 1] at `rate` Hz."""
    pcm = np.asarray(samples, np.float64)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return path


def stereo_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """16-bit stereo WAV: left a 440 Hz tone at 0.5, right silent."""
    n = int(seconds * rate)
    left = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
    return write_wav(path, np.stack([left, np.zeros(n)], axis=1), rate)


def png_bytes(img: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", img)
    assert ok
    return data.tobytes()


def top_level_boxes(data: bytes) -> list[str]:
    """Types of the top-level ISO-BMFF boxes of an MP4, in file order."""
    boxes, pos, stream = [], 0, io.BytesIO(data)
    while pos + 8 <= len(data):
        stream.seek(pos)
        size = int.from_bytes(stream.read(4), "big")
        kind = stream.read(4).decode("latin-1")
        if size == 1:
            size = int.from_bytes(stream.read(8), "big")
        boxes.append(kind)
        if size < 8:
            break
        pos += size
    return boxes
